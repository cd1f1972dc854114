/* gridgate native kernels: the public C API. One section per kernel, between the markers
 * [cdef NAME] and [end cdef]: the build generates each kernel's cffi cdef (native/cdef/NAME.h)
 * from its section (native/header_cdef.py), so the two cannot drift. What lies outside the
 * sections is internal to native/. */
#ifndef GRIDGATE_H
#define GRIDGATE_H

#include <stddef.h>
#include <stdint.h>

/* Bumped whenever a signature or a struct layout changes; gateway/native/ffi.py refuses a
 * compiled module whose number differs from the one the Python side was written for. */
#define GG_NATIVE_VERSION 2

/* [cdef core] */
/* Status codes shared by every kernel. Kernels never abort and never print. */
#define GG_OK 0
#define GG_EINVAL (-1)  /* an argument is out of range (size, index, NULL) */
#define GG_ENOCONV (-2) /* an iterative method did not converge within its cap */

int gg_native_version(void);
/* [end cdef] */

/* [cdef stats] */
/* ---- stats: windowed summaries and report-by-exception (native/stats.c) ----------------------
 * A sample enters the statistics only when its quality is 0 (GOOD) and its value is finite; any
 * other sample only increments `bad`. Arrays of points are contiguous; frames are row-major
 * [n_frames][n_points]. Nothing is allocated; on any error status nothing has been written. */

/* Per-point running state; its layout is asserted against a numpy dtype at import (stats.py). An
 * empty window has count 0, m2 0 and NaN min/max/mean/last/first_ts/last_ts. mean/m2 follow
 * Welford; m2 may become +inf when the spread itself overflows, never NaN. */
typedef struct {
    int64_t count; /* good samples */
    int64_t bad;   /* samples rejected: quality != GOOD or value not finite */
    double min;
    double max;
    double mean;
    double m2;       /* sum of squared deviations from the mean */
    double last;     /* value of the last good sample */
    double first_ts; /* timestamps of the first and last good sample */
    double last_ts;
} gg_stat_t;

/* Empties n windows. */
int gg_stats_reset(gg_stat_t *st, size_t n);
/* Adds n_frames frames of n_points values; ts[f] is the timestamp of frame f and must be finite
 * (GG_EINVAL otherwise, checked before anything is written). */
int gg_stats_add(gg_stat_t *st, size_t n_points, size_t n_frames, const double *values,
                 const uint8_t *quality, const double *ts);
/* Population variance m2/count: 0 for one sample, NaN for none. */
int gg_stats_variance(const gg_stat_t *st, size_t n, double *out);
/* Report-by-exception over n points. Point i is reported when quality[i] != last_quality[i], or
 * quality[i] is GOOD and its value moved: exactly one of value/last_reported is NaN, or both are
 * numbers, differ, and |value - last_reported| > deadband[i]. A reported point updates
 * last_reported/last_quality; out_report[i] is 1 or 0. deadband must be >= 0 (inf allowed) and not
 * NaN. Returns the number of reported points, or a negative GG_ status. */
int gg_rbe(size_t n, const double *value, const uint8_t *quality, double *last_reported,
           uint8_t *last_quality, const double *deadband, uint8_t *out_report);
/* [end cdef] */

/* [cdef decode] */
/* ---- decode: Modbus registers to numbers (native/decode.c) ------------------------------------
 * A register is the 16-bit value (first byte << 8) | second byte. A spec names where one point's
 * value starts in the register block, its type, its byte/word order, and value = raw*scale+offset.
 * Order codes: ABCD 0 (words high-first), CDAB 1 (words low-first), BADC 2 (bytes swapped in each
 * word), DCBA 3 (both); one-register types only honour the byte swap. A BIT point is bit `bit`
 * (0..15) of its register after the byte swap. A result that is not finite is written as NaN with
 * quality 2 (BAD); every other result has quality 0 (GOOD). Its layout is asserted against a numpy
 * dtype at import (gateway/native/decode.py). */
#define GG_DT_U16 0
#define GG_DT_I16 1
#define GG_DT_U32 2
#define GG_DT_I32 3
#define GG_DT_U64 4
#define GG_DT_I64 5
#define GG_DT_F32 6
#define GG_DT_F64 7
#define GG_DT_BIT 8
#define GG_DT_BOOL 9 /* a coil or discrete input stored as a 0/1 register: decoded as U16 */

typedef struct {
    uint32_t reg;  /* index of the point's first register in the block */
    uint8_t type;  /* GG_DT_* */
    uint8_t order; /* 0..3, see above */
    uint8_t bit;   /* 0..15, GG_DT_BIT only */
    uint8_t pad;   /* keeps `scale` 8-aligned on every ABI; write 0 */
    double scale;
    double offset;
} gg_decode_spec_t;

/* Decodes n_points specs from regs[0..n_regs). GG_EINVAL, before anything is written, when a spec
 * reads beyond n_regs or has an unknown type, order or bit index. */
int gg_decode(const uint16_t *regs, size_t n_regs, const gg_decode_spec_t *specs, size_t n_points,
              double *out, uint8_t *quality);
/* [end cdef] */

/* [cdef cells] */
/* ---- cells: per-cell SOC EKF, fault flags, string statistics, balancing plan (native/cells.c,
 * native/balance.c) ------------------------------------------------------------------------------
 * One call of gg_cells_step per measurement cycle for all n cells of a string. Current is the pack
 * current in amperes, positive = discharge. Param, config and summary have numpy twins asserted
 * at import (gateway/native/cells.py); state and coefficients are structs of pointers to one
 * array per field. Nothing is allocated: every array is owned by the caller and reached through
 * the context.
 *
 * Model (1RC Thevenin per cell with Plett's one-state hysteresis): with m = I dt / (3600 Q),
 * soc' = soc - m; v1' = a v1 + r1 (1 - a) I with a = exp(-dt / tau); h' = d h - (1 - d) sgn(I)
 * with d = exp(-hyst_gamma |m|); v = OCV(soc) + M(soc) h - v1 - r0 I. OCV and M (the half gap
 * between the charge and discharge OCV branches, 0 where there is no hysteresis) are piecewise
 * linear on the same uniform SOC grid 0..1 of n_ocv points; their derivatives are the slopes of
 * the segment (linear extrapolation outside). The EKF state is (soc, v1, h) with the symmetric
 * covariance p00..p22; soc is clamped to [0, 1] and h to [-1, 1] after predict and after update.
 * Process noise per step is diag(q_soc dt, q_v1 dt, q_h dt); measurement noise r_v (V^2).
 *
 * A voltage sample is PLAUSIBLE when its quality is 0 (GOOD), it is finite and v_lo <= v <= v_hi.
 * It is USED for the update when it is plausible, the current is finite and the innovation
 * |v - v_pred| <= jump_v; otherwise the cell only predicts and GG_CELL_PREDICT_ONLY is set. A non
 * finite current skips predict and update for every cell (covariance still grows).
 *
 * Debounced flags (bits 0..5): while a flag is clear its counter counts consecutive cycles whose
 * set condition holds and the flag sets when it reaches debounce_set; while set, the counter
 * counts consecutive cycles whose clear condition holds and the flag clears at debounce_clear. A
 * cycle where neither holds resets the counter; so does a cycle without a usable reading (voltage
 * not plausible for OV/UV/DEV, voltage not GOOD+finite for IMPLAUSIBLE, temperature not GOOD+finite
 * for OT/UT), which also leaves the flag as it was. Clear thresholds lie inside set thresholds. */
#define GG_CELL_OV (1u << 0) /* set v > ov_set, clear v < ov_clear */
#define GG_CELL_UV (1u << 1) /* set v < uv_set, clear v > uv_clear */
#define GG_CELL_OT (1u << 2) /* set t > ot_set, clear t < ot_clear */
#define GG_CELL_UT (1u << 3) /* set t < ut_set, clear t > ut_clear */
/* DEVIATION: set |v - median| > dev_k_set s, clear < dev_k_clear s; s = max(1.4826 MAD,
 * dev_sigma_min) over plausible cells, evaluated only when at least 3 cells are plausible. */
#define GG_CELL_DEVIATION (1u << 4)
/* IMPLAUSIBLE: a GOOD finite reading outside [v_lo, v_hi] (an open sense wire reads ~0 V) or a
 * jump the current does not explain (|innovation| > jump_v); clear when neither. */
#define GG_CELL_IMPLAUSIBLE (1u << 5)
#define GG_CELL_V_BAD (1u << 8)         /* this cycle: voltage quality not GOOD or not finite */
#define GG_CELL_T_BAD (1u << 9)         /* this cycle: temperature quality not GOOD or not finite */
#define GG_CELL_STALE (1u << 10)        /* no plausible voltage for more than stale_s seconds */
#define GG_CELL_NO_CURRENT (1u << 11)   /* this cycle: the pack current was not finite */
#define GG_CELL_PREDICT_ONLY (1u << 12) /* this cycle: the EKF skipped its update */
#define GG_CELL_BLEED (1u << 16)        /* this cycle: the plan bleeds this cell */
/* A cell is FAULTED when any of these is set: counted in n_faulted, excluded from the balancing
 * target, and it interlocks balancing on its board. */
#define GG_CELL_FAULTS                                                                             \
    (GG_CELL_OV | GG_CELL_UV | GG_CELL_OT | GG_CELL_UT | GG_CELL_DEVIATION | GG_CELL_IMPLAUSIBLE   \
     | GG_CELL_STALE)

/* Balancing modes. SOC: target = lowest SOC among good cells, a cell is a candidate when its SOC
 * exceeds the target by more than bal_soc_window. VOLTAGE: target = lowest last plausible voltage
 * among good cells, candidate when v_last exceeds it by more than bal_v_window. A good cell is not
 * faulted and has age_s <= bal_max_age_s. */
#define GG_BAL_OFF 0
#define GG_BAL_SOC 1
#define GG_BAL_VOLTAGE 2

/* Why a board may not bleed (bits of board_interlock; any bit set = empty mask). */
#define GG_BAL_IL_OFF (1u << 0)       /* mode is GG_BAL_OFF */
#define GG_BAL_IL_LOW_V (1u << 1)     /* a cell's last plausible voltage < bal_min_v (or none) */
#define GG_BAL_IL_HOT (1u << 2)       /* a cell's temperature > bal_max_temp or not GOOD+finite */
#define GG_BAL_IL_STALE (1u << 3)     /* last plausible voltage older than bal_max_age_s */
#define GG_BAL_IL_FAULT (1u << 4)     /* a cell of the board is FAULTED */
#define GG_BAL_IL_NO_TARGET (1u << 5) /* no good cell in the string to balance to */

typedef struct {
    double capacity_ah; /* > 0 */
    double r0;          /* ohm, >= 0 */
    double r1;          /* ohm, >= 0 */
    double tau_s;       /* r1 c1, seconds, > 0 */
} gg_cell_param_t;

/* Per-cell state as a struct of arrays (each pointer [n], count [n][8]), so that the EKF runs
 * two cells per SSE2/NEON instruction. */
typedef struct {
    double *soc; /* 0..1 */
    double *v1;  /* polarisation voltage, V */
    double *h;   /* hysteresis state, -1 (after discharge) .. +1 (after charge) */
    double *p00; /* covariance of (soc, v1, h) */
    double *p01;
    double *p02;
    double *p11;
    double *p12;
    double *p22;
    double *ocv;     /* OCV of the predicted SOC this cycle (what the update compared to) */
    double *v_last;  /* last plausible voltage, NaN before the first */
    double *age_s;   /* seconds since the last plausible voltage, +inf before the first */
    double *innov;   /* v - v_pred this cycle; NaN without a GOOD finite v or a current */
    uint32_t *flags; /* GG_CELL_* */
    uint8_t *count;  /* [n][8] debounce counters of flag bits 0..5 (6, 7 unused) */
} gg_cell_state_t;

typedef struct {
    double q_soc, q_v1, q_h, r_v; /* process noise per second; measurement noise V^2 */
    double hyst_gamma;            /* hysteresis rate per unit of SOC moved, >= 0 */
    double v_lo, v_hi, jump_v;    /* plausibility: physical range, innovation gate (V) */
    double ov_set, ov_clear, uv_set, uv_clear;    /* V */
    double ot_set, ot_clear, ut_set, ut_clear;    /* degC */
    double dev_k_set, dev_k_clear, dev_sigma_min; /* sigmas, sigmas, V */
    double stale_s;
    double bal_bleed_ohm;                          /* bleed resistor, > 0 */
    double bal_soc_window;                         /* SOC mode deadband, fraction of 1 */
    double bal_v_window;                           /* VOLTAGE mode threshold above the minimum, V */
    double bal_min_v, bal_max_temp, bal_max_age_s; /* interlocks */
    int32_t debounce_set, debounce_clear;          /* 1..255 cycles */
    int32_t bal_mode;                              /* GG_BAL_* */
    int32_t cells_per_board;                       /* 1..32; the last board may be partial */
    int32_t bal_max_per_board; /* thermal limit: cells bleeding at once per board, >= 0 */
    int32_t pad;
} gg_cells_cfg_t;

/* String statistics of one cycle. Voltage figures cover plausible readings, temperature figures
 * GOOD finite ones; an empty set gives NaN and index -1. Ties give the lowest index. */
typedef struct {
    double soc_min, soc_mean, soc_max;
    double v_min, v_mean, v_max, v_spread; /* spread = max - min */
    double v_median, v_sigma;              /* robust: median and max(1.4826 MAD, dev_sigma_min) */
    double t_min, t_max;
    double target_soc; /* balancing target (SOC mode) or NaN */
    double target_v;   /* balancing target (VOLTAGE mode) or NaN */
    int64_t soc_min_idx, soc_max_idx, v_min_idx, v_max_idx, t_min_idx, t_max_idx;
    int64_t n_plausible, n_predict_only, n_faulted, n_bleeding;
} gg_cells_summary_t;

typedef struct {
    double *a, *b, *inv_q; /* [n] exp(-dt/tau), r1 (1 - a), 1 / (3600 capacity) */
    double *g;             /* [n] hyst_gamma dt inv_q: the hysteresis decay is exp(-g |I|) */
    double *r0;            /* [n] copy of param r0, next to the others for two-cell loads */
} gg_cell_coef_t;

/* Everything one string needs, filled once by the owner. coef is a cache valid for coef_dt (set
 * it to NaN after changing params; the kernel recomputes it whenever dt changes, so a steady
 * nominal dt costs no exp per call). scratch holds n doubles for the median. */
typedef struct {
    size_t n;
    size_t n_ocv;
    const double *ocv;
    const double *hyst; /* [n_ocv] M(soc) >= 0, V; all 0 for a chemistry without */
    const gg_cell_param_t *param;
    const gg_cells_cfg_t *cfg;
    const gg_cell_state_t *state; /* the arrays it points to are written */
    const gg_cell_coef_t *coef;
    double coef_dt;
    /* Last cycle's median, MAD and mean of the plausible readings, kept by the kernel as
     * guesses that make this cycle's robust statistics cheaper. Any value gives the same
     * results (a guess that misses costs time only); NaN after reset. */
    double hint_median, hint_mad, hint_mean;
    /* 0: the widest code the CPU runs (gg_cells_lanes); 2: the two-lane code only, which tests
     * compare with the four-lane one. */
    int32_t lanes;
    double *scratch;
    double *excess_ah;         /* [n] charge to bleed to reach the target, Ah (>= 0) */
    double *bleed_s;           /* [n] time that takes at v_last / bal_bleed_ohm, s */
    uint32_t *board_mask;      /* [n_boards] bit j = cell j of the board bleeds */
    uint32_t *board_interlock; /* [n_boards] GG_BAL_IL_* */
    gg_cells_summary_t *summary;
} gg_cells_ctx_t;

/* GG_OK when the context is complete and consistent: pointers set, n_ocv >= 2 with finite
 * values, every parameter in range, thresholds ordered (clear inside set), counts in range. */
int gg_cells_check(const gg_cells_ctx_t *ctx);
/* Starts every cell at soc0[i] (clamped to 0..1) with covariance diag(p0_soc, p0_v1, p0_h),
 * v1 = h = 0, no flags, no reading; invalidates the coefficient cache. */
int gg_cells_reset(gg_cells_ctx_t *ctx, const double *soc0, double p0_soc, double p0_v1,
                   double p0_h);
/* One cycle: EKF, flags, statistics, balancing plan. v/vq/t/tq have n entries. dt must be finite
 * and > 0. Returns the number of FAULTED cells, or GG_EINVAL (nothing written) for a NULL pointer
 * or a bad dt. Parameters and config are not re-checked per call: the owner runs gg_cells_check
 * once after setting them. */
int gg_cells_step(gg_cells_ctx_t *ctx, double dt, double current, const double *v,
                  const uint8_t *vq, const double *t, const uint8_t *tq);
/* The balancing part of gg_cells_step alone, from the states (flags, soc, v_last, age_s) and
 * this cycle's temperatures; writes excess_ah, bleed_s, board masks, interlocks, the BLEED flag
 * and the summary's target and n_bleeding. */
int gg_cells_balance(gg_cells_ctx_t *ctx, const double *t, const uint8_t *tq);
/* Cells per instruction of the EKF without hysteresis on this CPU: 4 with x86-64-v3 (AVX2), else
 * 2 (SSE2, NEON). */
int gg_cells_lanes(void);
/* [end cdef] */

#include <math.h> /* isfinite, for the inlines below */

/* Internal to cells.c and balance.c, not in the cdef. A cell the balancing target may be taken
 * from: not faulted, with a plausible voltage no older than bal_max_age_s. */
static inline int gg_cell_good(const gg_cell_state_t *s, size_t i, const gg_cells_cfg_t *cfg)
{
    return (s->flags[i] & GG_CELL_FAULTS) == 0 && isfinite(s->v_last[i])
           && s->age_s[i] <= cfg->bal_max_age_s;
}
/* The GG_BAL_IL_* bits one cell sets on its board (LOW_V, HOT, STALE, FAULT); the thresholds
 * are bal_min_v, bal_max_temp and bal_max_age_s, passed by value so that a loop keeps them in
 * registers. Written as !(ok) so that NaN interlocks too, and without a branch on the data. */
static inline uint32_t gg_cell_interlock(const gg_cell_state_t *s, size_t i, double t, uint8_t tq,
                                         double min_v, double max_temp, double max_age)
{
    return (uint32_t) !(s->v_last[i] >= min_v) * GG_BAL_IL_LOW_V
           | (uint32_t) !(tq == 0 && t <= max_temp) * GG_BAL_IL_HOT
           | (uint32_t) !(s->age_s[i] <= max_age) * GG_BAL_IL_STALE
           | (uint32_t)((s->flags[i] & GG_CELL_FAULTS) != 0) * GG_BAL_IL_FAULT;
}
/* The plan (everything gg_cells_balance writes) once the lowest good cell is known (-1: none)
 * and board_interlock holds the OR of gg_cell_interlock over each board's cells, with every
 * BLEED flag clear; gg_cells_step gathers both in its last pass over the states. */
void gg_cells_plan(gg_cells_ctx_t *ctx, long low);

/* [cdef loadflow] */
/* ---- loadflow: unbalanced backward/forward sweep of a radial LV feeder (native/loadflow.c) ----
 * Complex numbers are (re, im) pairs of doubles; a three-phase quantity is 6 doubles (a, b, c).
 * All values are per-unit (power-grid-model's bases: 1 MVA three-phase, u_rated/sqrt(3) per
 * phase). Every series element and shunt is sequence-symmetric, so its 3x3 phase matrix is
 * z1*I + zm*ones and is stored as 4 doubles (z1, zm).
 *
 * The full tree has n_nodes nodes in breadth-first order (parent[i] < i, parent[0] = -1, node 0 is
 * the LV busbar fed by the Thevenin equivalent e_th - z_th*J of source and transformer). The sweep
 * itself runs on a reduced tree of n_kept nodes (the busbar, nodes with loads or shunts, and
 * branching points between them), whose segments sum the impedances of chains of lines; unloaded
 * branches carry no current. A solve ends with the reduced solution (busbar voltage and the
 * current of every kept segment); gg_lf_expand derives every node voltage and line current of the
 * full tree from it, only when the caller needs them. Nothing is allocated: the caller owns the
 * model arrays, the workspace and every output. */
typedef struct {
    size_t n_nodes; /* full tree */
    size_t n_kept;  /* reduced tree, >= 1; kept node 0 is node 0 */
    size_t n_loads;
    const int32_t *parent; /* [n_nodes] */
    const double *z_line;  /* [n_nodes][4] series impedance of the line feeding node i */
    const int32_t
        *line_seg; /* [n_nodes] kept node whose current the line feeding i carries, or -1 */
    const int32_t *kept_parent; /* [n_kept] kept index of the parent, kept_parent[k] < k, -1 at 0 */
    const int32_t *kept_node;   /* [n_kept] full-tree index of each kept node */
    const double *z_seg;        /* [n_kept][4] summed impedance from the kept parent */
    const double *y_kept;       /* [n_kept][4] shunt admittance at the kept node */
    const int32_t *load_kept;   /* [n_loads] kept index of each load's node */
    const int32_t *load_type;   /* [n_loads] GG_LF_CONST_* */
    const double *load_scale;   /* [n_loads] caller's power unit -> p.u.; 0 switches a load off */
    double e_th[6];             /* open-circuit busbar voltage per phase */
    double z_th[4];             /* Thevenin impedance of source and transformer */
} gg_lf_model_t;

/* Owned by the caller: v and j hold n_kept*6 doubles each, s n_loads*6. After a converged solve
 * v[0..5] is the busbar voltage and j[k*6..k*6+5] the current of kept segment k (row 0: what the
 * head delivers to the busbar): the reduced solution, and the warm start of the next solve.
 * warm_valid is 0 until a solve converged (and again after one that did not), then 1 after an
 * unbalanced and 2 after a balanced solve (a warm start needs the same mode). s is scratch. */
typedef struct {
    double *v;
    double *j;
    double *s;
    int32_t warm_valid;
} gg_lf_work_t;

#define GG_LF_CONST_POWER 0     /* S = s */
#define GG_LF_CONST_IMPEDANCE 1 /* S = s*|V|^2 */
#define GG_LF_CONST_CURRENT 2   /* S = s*|V| */

/* GG_OK when every index and size of the model is consistent, GG_EINVAL otherwise. */
int gg_lf_check(const gg_lf_model_t *m);
/* One load flow on the reduced tree. p[n_loads][3] and q[n_loads][3] are each load's active and
 * reactive power per phase, consumption positive, in the caller's unit (times load_scale[l]: p.u.).
 * symmetric != 0 solves the balanced positive-sequence network with each load's mean phase power.
 * warm != 0 starts from the workspace's last solution when valid, else from e_th everywhere.
 * Stops when no kept node voltage moved more than tol (p.u., complex) in an iteration: GG_OK, the
 * reduced solution in the workspace, *iterations used. After max_iter iterations, or a voltage
 * collapsing to zero or not finite: GG_ENOCONV, *iterations = max_iter, and the workspace is not
 * a solution (warm_valid 0). */
int gg_lf_solve(const gg_lf_model_t *m, gg_lf_work_t *w, const double *p, const double *q,
                int symmetric, int warm, double tol, int max_iter, int32_t *iterations);
/* n_steps solves; step t reads p[t], q[t] and writes its reduced solution v_head[t][6] and
 * j_kept[t][n_kept][6], iterations[t] and status[t] (GG_OK, or GG_ENOCONV with NaN in v_head[t]
 * and j_kept[t], never a partial result). Each step starts warm from the previous one's solution
 * (the first from the workspace if warm != 0). Returns the number of steps that did not
 * converge, or GG_EINVAL. */
int gg_lf_solve_batch(const gg_lf_model_t *m, gg_lf_work_t *w, size_t n_steps, const double *p,
                      const double *q, int symmetric, int warm, double tol, int max_iter,
                      double *v_head, double *j_kept, int32_t *iterations, int32_t *status);
/* The full tree of n_steps reduced solutions (as gg_lf_solve_batch writes them):
 * v_out[t][n_nodes][6] node voltages and j_out[t][n_nodes][6] the series current of the line
 * feeding each node (row 0: the current into the busbar). Either output may be NULL. Steps whose
 * status[t] is not GG_OK (status may be NULL: all converged) are NaN throughout. GG_OK or
 * GG_EINVAL. */
int gg_lf_expand(const gg_lf_model_t *m, size_t n_steps, int symmetric, const int32_t *status,
                 const double *v_head, const double *j_kept, double *v_out, double *j_out);
/* Only the node voltage magnitudes of n_steps reduced solutions: u_out[t][n_nodes][3] = |v| (p.u.),
 * equal to numpy's abs of gg_lf_expand's v_out, without writing the complex voltages of every step
 * (each step is filled in through scratch[n_nodes*6] doubles, which stays in cache). Steps whose
 * status[t] is not GG_OK (status may be NULL: all converged) are NaN. GG_OK or GG_EINVAL. */
int gg_lf_expand_u(const gg_lf_model_t *m, size_t n_steps, int symmetric, const int32_t *status,
                   const double *v_head, const double *j_kept, double *scratch, double *u_out);
/* [end cdef] */

#endif
