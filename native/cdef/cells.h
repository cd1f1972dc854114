/* Generated from native/gridgate.h by the build: edit the header, not this file. */
#define GG_CELL_OV 1
#define GG_CELL_UV 2
#define GG_CELL_OT 4
#define GG_CELL_UT 8
#define GG_CELL_DEVIATION 16
#define GG_CELL_IMPLAUSIBLE 32
#define GG_CELL_V_BAD 256
#define GG_CELL_T_BAD 512
#define GG_CELL_STALE 1024
#define GG_CELL_NO_CURRENT 2048
#define GG_CELL_PREDICT_ONLY 4096
#define GG_CELL_BLEED 65536
#define GG_CELL_FAULTS 1087
#define GG_BAL_OFF 0
#define GG_BAL_SOC 1
#define GG_BAL_VOLTAGE 2
#define GG_BAL_IL_OFF 1
#define GG_BAL_IL_LOW_V 2
#define GG_BAL_IL_HOT 4
#define GG_BAL_IL_STALE 8
#define GG_BAL_IL_FAULT 16
#define GG_BAL_IL_NO_TARGET 32
typedef struct {
    double capacity_ah;
    double r0;
    double r1;
    double tau_s;
} gg_cell_param_t;
typedef struct {
    double *soc;
    double *v1;
    double *h;
    double *p00;
    double *p01;
    double *p02;
    double *p11;
    double *p12;
    double *p22;
    double *ocv;
    double *v_last;
    double *age_s;
    double *innov;
    uint32_t *flags;
    uint8_t *count;
} gg_cell_state_t;
typedef struct {
    double q_soc, q_v1, q_h, r_v;
    double hyst_gamma;
    double v_lo, v_hi, jump_v;
    double ov_set, ov_clear, uv_set, uv_clear;
    double ot_set, ot_clear, ut_set, ut_clear;
    double dev_k_set, dev_k_clear, dev_sigma_min;
    double stale_s;
    double bal_bleed_ohm;
    double bal_soc_window;
    double bal_v_window;
    double bal_min_v, bal_max_temp, bal_max_age_s;
    int32_t debounce_set, debounce_clear;
    int32_t bal_mode;
    int32_t cells_per_board;
    int32_t bal_max_per_board;
    int32_t pad;
} gg_cells_cfg_t;
typedef struct {
    double soc_min, soc_mean, soc_max;
    double v_min, v_mean, v_max, v_spread;
    double v_median, v_sigma;
    double t_min, t_max;
    double target_soc;
    double target_v;
    int64_t soc_min_idx, soc_max_idx, v_min_idx, v_max_idx, t_min_idx, t_max_idx;
    int64_t n_plausible, n_predict_only, n_faulted, n_bleeding;
} gg_cells_summary_t;
typedef struct {
    double *a, *b, *inv_q;
    double *g;
    double *r0;
} gg_cell_coef_t;
typedef struct {
    size_t n;
    size_t n_ocv;
    const double *ocv;
    const double *hyst;
    const gg_cell_param_t *param;
    const gg_cells_cfg_t *cfg;
    const gg_cell_state_t *state;
    const gg_cell_coef_t *coef;
    double coef_dt;
    double hint_median, hint_mad, hint_mean;
    int32_t lanes;
    double *scratch;
    double *excess_ah;
    double *bleed_s;
    uint32_t *board_mask;
    uint32_t *board_interlock;
    gg_cells_summary_t *summary;
} gg_cells_ctx_t;
int gg_cells_check(const gg_cells_ctx_t *ctx);
int gg_cells_reset(gg_cells_ctx_t *ctx, const double *soc0, double p0_soc, double p0_v1,
                   double p0_h);
int gg_cells_step(gg_cells_ctx_t *ctx, double dt, double current, const double *v,
                  const uint8_t *vq, const double *t, const uint8_t *tq);
int gg_cells_balance(gg_cells_ctx_t *ctx, const double *t, const uint8_t *tq);
int gg_cells_lanes(void);
