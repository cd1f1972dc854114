/* Per-cell SOC EKF, fault flags and string statistics (see gridgate.h, cells). The balancing plan
 * is in balance.c. Per cell, arithmetic is written in the same order as the numpy reference
 * (gateway/native/cells_ref.py) so the two agree to rounding, not just to a tolerance; sums over
 * the string run on two lanes (numpy's own pairwise order differs from either). */
#include <math.h>
#include <string.h>

#include "gridgate.h"
#include "lanes.h"

enum { Q_GOOD = 0, MAX_DEBOUNCE = 255, MAX_CELLS_PER_BOARD = 32 };

/* MAD of a normal sample times this estimates its standard deviation. */
static const double MAD_TO_SIGMA = 1.4826;

/* Half width, in last cycle's MADs, of the window the median and the MAD are looked for in. */
static const double WINDOW_MADS = 0.25;

enum { CNT_OV = 0, CNT_UV = 1, CNT_OT = 2, CNT_UT = 3, CNT_DEV = 4, CNT_IMPL = 5 };

static const uint32_t DEBOUNCED =
    GG_CELL_OV | GG_CELL_UV | GG_CELL_OT | GG_CELL_UT | GG_CELL_DEVIATION | GG_CELL_IMPLAUSIBLE;

static int pos_finite(double x) { return isfinite(x) && x > 0.0; }

static int cfg_ok(const gg_cells_cfg_t *c)
{
    /* Written as !(ok) so that a NaN anywhere is refused. */
    if (!(c->q_soc >= 0.0 && isfinite(c->q_soc) && c->q_v1 >= 0.0 && isfinite(c->q_v1)
          && c->q_h >= 0.0 && isfinite(c->q_h) && pos_finite(c->r_v) && c->hyst_gamma >= 0.0
          && isfinite(c->hyst_gamma))) {
        return 0;
    }
    /* v_lo > 0: a plausible reading divides the bleed time. */
    if (!(pos_finite(c->v_lo) && isfinite(c->v_hi) && c->v_lo < c->v_hi && c->jump_v > 0.0)) {
        return 0;
    }
    if (!(c->ov_clear <= c->ov_set && c->uv_clear >= c->uv_set && c->ot_clear <= c->ot_set
          && c->ut_clear >= c->ut_set)) {
        return 0;
    }
    if (!(c->dev_k_clear >= 0.0 && c->dev_k_clear <= c->dev_k_set && pos_finite(c->dev_sigma_min)
          && c->stale_s >= 0.0)) {
        return 0;
    }
    if (!(pos_finite(c->bal_bleed_ohm) && c->bal_soc_window >= 0.0 && c->bal_v_window >= 0.0
          && !isnan(c->bal_min_v) && !isnan(c->bal_max_temp) && c->bal_max_age_s >= 0.0)) {
        return 0;
    }
    if (c->debounce_set < 1 || c->debounce_set > MAX_DEBOUNCE || c->debounce_clear < 1
        || c->debounce_clear > MAX_DEBOUNCE) {
        return 0;
    }
    if (c->bal_mode < GG_BAL_OFF || c->bal_mode > GG_BAL_VOLTAGE || c->cells_per_board < 1
        || c->cells_per_board > MAX_CELLS_PER_BOARD || c->bal_max_per_board < 0
        || c->bal_max_per_board > c->cells_per_board) {
        return 0;
    }
    return 1;
}

static int soa_ok(const gg_cells_ctx_t *ctx);

int gg_cells_check(const gg_cells_ctx_t *ctx)
{
    /* n_ocv fits an int32: the EKF converts table indices to int32 lanes (lanes.h, gather2). */
    if (ctx == NULL || ctx->n == 0 || ctx->n > (size_t)INT32_MAX || ctx->n_ocv < 2
        || ctx->n_ocv > (size_t)INT32_MAX || ctx->ocv == NULL || ctx->hyst == NULL
        || ctx->param == NULL || ctx->cfg == NULL || !soa_ok(ctx) || ctx->scratch == NULL
        || ctx->excess_ah == NULL || ctx->bleed_s == NULL || ctx->board_mask == NULL
        || ctx->board_interlock == NULL || ctx->summary == NULL) {
        return GG_EINVAL;
    }
    /* OCV divides the bleed time, so it must be a positive voltage everywhere. */
    for (size_t k = 0; k < ctx->n_ocv; k++) {
        if (!pos_finite(ctx->ocv[k]) || !(ctx->hyst[k] >= 0.0 && isfinite(ctx->hyst[k]))) {
            return GG_EINVAL;
        }
    }
    if (!cfg_ok(ctx->cfg)) {
        return GG_EINVAL;
    }
    for (size_t i = 0; i < ctx->n; i++) {
        const gg_cell_param_t *p = &ctx->param[i];
        if (!(pos_finite(p->capacity_ah) && isfinite(p->r0) && p->r0 >= 0.0 && isfinite(p->r1)
              && p->r1 >= 0.0 && pos_finite(p->tau_s))) {
            return GG_EINVAL;
        }
    }
    return GG_OK;
}

static inline double clamp01(double x) { return x < 0.0 ? 0.0 : (x > 1.0 ? 1.0 : x); }

/* Every array of the state and of the coefficient cache is set. */
static int soa_ok(const gg_cells_ctx_t *ctx)
{
    const gg_cell_state_t *s = ctx->state;
    const gg_cell_coef_t *c = ctx->coef;
    return s != NULL && c != NULL && s->soc != NULL && s->v1 != NULL && s->h != NULL
           && s->p00 != NULL && s->p01 != NULL && s->p02 != NULL && s->p11 != NULL && s->p12 != NULL
           && s->p22 != NULL && s->ocv != NULL && s->v_last != NULL && s->age_s != NULL
           && s->innov != NULL && s->flags != NULL && s->count != NULL && c->a != NULL
           && c->b != NULL && c->inv_q != NULL && c->g != NULL && c->r0 != NULL;
}

int gg_cells_reset(gg_cells_ctx_t *ctx, const double *soc0, double p0_soc, double p0_v1,
                   double p0_h)
{
    if (ctx == NULL || !soa_ok(ctx) || ctx->n == 0 || soc0 == NULL
        || !(p0_soc >= 0.0 && isfinite(p0_soc) && p0_v1 >= 0.0 && isfinite(p0_v1) && p0_h >= 0.0
             && isfinite(p0_h))) {
        return GG_EINVAL;
    }
    for (size_t i = 0; i < ctx->n; i++) {
        if (!isfinite(soc0[i])) {
            return GG_EINVAL;
        }
    }
    const gg_cell_state_t *s = ctx->state;
    for (size_t i = 0; i < ctx->n; i++) {
        s->soc[i] = clamp01(soc0[i]);
        s->v1[i] = 0.0;
        s->h[i] = 0.0;
        s->p00[i] = p0_soc;
        s->p01[i] = 0.0;
        s->p02[i] = 0.0;
        s->p11[i] = p0_v1;
        s->p12[i] = 0.0;
        s->p22[i] = p0_h;
        s->ocv[i] = NAN;
        s->v_last[i] = NAN;
        s->age_s[i] = INFINITY;
        s->innov[i] = NAN;
        s->flags[i] = 0;
    }
    memset(s->count, 0, ctx->n * 8);
    ctx->coef_dt = NAN;
    ctx->hint_median = NAN;
    ctx->hint_mad = NAN;
    ctx->hint_mean = NAN;
    return GG_OK;
}

/* The OCV of one SOC: piecewise linear on a uniform grid of m points over 0..1, the index of the
 * segment clamped to the table (values outside 0..1 extrapolate the end segments). The index is
 * floor(x) clamped to 0..m-2, computed by truncation where x is positive (a conversion is far
 * cheaper than floor() without SSE4.1). The EKF's form, with the hysteresis table and the slopes,
 * is in ekf_lanes.h; this one serves the cycles without a current. */
static inline double ocv_at(const double *ocv, size_t m, double soc)
{
    const double span = (double)(m - 1);
    const double x = soc * span;
    size_t k = 0;
    if (x >= span - 1.0) {
        k = m - 2;
    } else if (x > 0.0) {
        k = (size_t)x;
    }
    const double f = x - (double)k;
    return ocv[k] + f * (ocv[k + 1] - ocv[k]);
}

/* The hysteresis decay exp(-x), x = g |I| >= 0, is about 1e-3 at rack currents. There it is the
 * Taylor series to the x^8 term (the rest is below 1e-21 of the result, rounding leaves a few
 * ulp), which needs no call: a libm call in the EKF loop costs little itself but makes the
 * compiler keep every live lane in memory around it. Each lane above SMALL_DECAY takes exp(). */
static const double SMALL_DECAY = 1.0 / 64.0;

static inline v2d decay2(v2d x)
{
    const v2d y = -x;
    v2d p = 1.0 + y * (1.0 / 8.0);
    p = 1.0 + y * (1.0 / 7.0) * p;
    p = 1.0 + y * (1.0 / 6.0) * p;
    p = 1.0 + y * (1.0 / 5.0) * p;
    p = 1.0 + y * (1.0 / 4.0) * p;
    p = 1.0 + y * (1.0 / 3.0) * p;
    p = 1.0 + y * (1.0 / 2.0) * p;
    p = 1.0 + y * p;
    for (int l = 0; l < 2; l++) {
        if (!(x[l] <= SMALL_DECAY)) {
            p[l] = exp(y[l]);
        }
    }
    return p;
}

/* What the EKF needs besides the cell. */
typedef struct {
    const double *ocv;
    const double *hyst;
    size_t m;
    double current, dt, qs, qv, qh, sgn_i, abs_i, jump_v, r_v, v_lo, v_hi;
    int decay; /* hyst_gamma > 0: else d = exp(-0) = 1 for every cell and the exp is skipped */
} ekf_in_t;

/* Pass 1 tells pass 2 that the reading was plausible, and the EKF tells the flag loop that the
 * gate refused it; never visible outside the call. */
static const uint32_t IN_RANGE = 1u << 31;
static const uint32_t GATE_FAIL = 1u << 30;

/* The bits the EKF of one cell leaves for the flag loop: the debounced flags kept, PREDICT_ONLY
 * unless the update ran, V_BAD, and the two internal bits. */
static inline uint32_t ekf_bits(uint32_t old, int v_good, int in_range, int gate_fail, int used)
{
    return (old & DEBOUNCED) | (uint32_t)!used * GG_CELL_PREDICT_ONLY
           | (uint32_t)!v_good * GG_CELL_V_BAD | (uint32_t)in_range * IN_RANGE
           | (uint32_t)gate_fail * GATE_FAIL;
}

/* decay2 on one lane (and decay4 below on four): the same series per lane by construction. */
static inline v1d decay1(v1d x) { return (v1d){decay2((v2d){x[0], x[0]})[0]}; }

#define EKF_W 1
#define EKF_TARGET
#include "ekf_lanes.h"
#define EKF_W 2
#define EKF_TARGET
#include "ekf_lanes.h"

/* The EKF over every cell, two at a time, an odd last cell on one lane. */
static inline __attribute__((always_inline)) void ekf_all(const gg_cell_state_t *restrict st,
                                                          const gg_cell_coef_t *restrict coef,
                                                          size_t n, const double *restrict v,
                                                          const uint8_t *restrict vq,
                                                          const ekf_in_t *k, const int with_hyst)
{
    const size_t i = ekf_from2(st, coef, 0, n, v, vq, k, with_hyst);
    ekf_from1(st, coef, i, n, v, vq, k, with_hyst);
}

#if GG_QUAD
/* decay2 on four lanes: two halves through decay2 itself. */
static inline __attribute__((always_inline)) GG_QUAD_TARGET v4d decay4(v4d x)
{
    const v2d lo = decay2((v2d){x[0], x[1]});
    const v2d hi = decay2((v2d){x[2], x[3]});
    return (v4d){lo[0], lo[1], hi[0], hi[1]};
}

#define EKF_W 4
#define EKF_TARGET GG_QUAD_TARGET
#include "ekf_lanes.h"

/* The EKF over every cell, four at a time, the rest as ekf_all does. gg_cells_step uses it where
 * the CPU has x86-64-v3; tests run both and compare. */
static inline __attribute__((always_inline)) GG_QUAD_TARGET void
ekf_all_quad(const gg_cell_state_t *restrict st, const gg_cell_coef_t *restrict coef, size_t n,
             const double *restrict v, const uint8_t *restrict vq, const ekf_in_t *k,
             const int with_hyst)
{
    size_t i = ekf_from4(st, coef, 0, n, v, vq, k, with_hyst);
    i = ekf_from2(st, coef, i, n, v, vq, k, with_hyst);
    ekf_from1(st, coef, i, n, v, vq, k, with_hyst);
}

/* The two copies gg_cells_step chooses from on x86-64-v3. */
static GG_QUAD_TARGET void ekf_quad_hyst(const gg_cell_state_t *restrict st,
                                         const gg_cell_coef_t *restrict coef, size_t n,
                                         const double *restrict v, const uint8_t *restrict vq,
                                         const ekf_in_t *k)
{
    ekf_all_quad(st, coef, n, v, vq, k, 1);
}

static GG_QUAD_TARGET void ekf_quad_plain(const gg_cell_state_t *restrict st,
                                          const gg_cell_coef_t *restrict coef, size_t n,
                                          const double *restrict v, const uint8_t *restrict vq,
                                          const ekf_in_t *k)
{
    ekf_all_quad(st, coef, n, v, vq, k, 0);
}
#endif

int gg_cells_lanes(void) { return gg_has_quad() ? 4 : 2; }

static void refresh_coef(gg_cells_ctx_t *ctx, double dt)
{
    /* dt is usually the same nominal period every call: one exp per cell only when it changes. */
    const gg_cell_coef_t *c = ctx->coef;
    for (size_t i = 0; i < ctx->n; i++) {
        const gg_cell_param_t *p = &ctx->param[i];
        const double a = exp(-dt / p->tau_s);
        c->a[i] = a;
        c->b[i] = p->r1 * (1.0 - a);
        c->inv_q[i] = 1.0 / (3600.0 * p->capacity_ah);
        c->g[i] = ctx->cfg->hyst_gamma * dt * c->inv_q[i];
        c->r0[i] = p->r0;
    }
    ctx->coef_dt = dt;
}

static inline uint32_t debounce(uint32_t flags, uint32_t bit, uint8_t *count, int usable, int set,
                                int clear, const gg_cells_cfg_t *cfg)
{
    if (!usable) {
        *count = 0;
        return flags;
    }
    const int active = (flags & bit) != 0;
    if (active ? !clear : !set) {
        *count = 0; /* the run of consecutive cycles is broken */
        return flags;
    }
    *count = (uint8_t)(*count + 1);
    if (*count >= (active ? cfg->debounce_clear : cfg->debounce_set)) {
        *count = 0;
        return active ? (flags & ~bit) : (flags | bit);
    }
    return flags;
}

/* Moves the elements of a[lo..hi] that are below p (strict) or at most p (!strict) to the
 * front, in place; returns where the rest starts. Branch-free (Lomuto's scheme, swapping at
 * every step and advancing the boundary by the comparison): with readings that change every
 * cycle, the branches of a Hoare partition are mispredicted about once per element. Swapping an
 * element that stays behind the boundary only reorders that part. */
static long partition_le(double *a, long lo, long hi, double p, int strict)
{
    long s = lo;
    for (long j = lo; j <= hi; j++) {
        const double x = a[j];
        const double t = a[s];
        a[s] = x;
        a[j] = t;
        s += strict ? x < p : x <= p;
    }
    return s;
}

/* k-th smallest of a[0..n) (quickselect, median-of-three pivot value); reorders a so that
 * a[0..k) <= a[k] <= a(k..n). Each round splits a[lo..hi] into < p, == p and > p (the second
 * split only when k is not in the first part), so equal readings cannot stall it. */
static double select_kth(double *a, long n, long k)
{
    long lo = 0;
    long hi = n - 1;
    while (hi > lo) {
        const double x = a[lo];
        const double y = a[lo + (hi - lo) / 2];
        const double z = a[hi];
        const double mn = x < y ? x : y;
        const double mx = x < y ? y : x;
        const double p = mx < z ? mx : (mn < z ? z : mn); /* an element of a[lo..hi] */
        const long below = partition_le(a, lo, hi, p, 1);
        if (k < below) {
            hi = below - 1; /* p is not in there: the range shrinks */
            continue;
        }
        const long equal_end = partition_le(a, below, hi, p, 0);
        if (k < equal_end) {
            return p; /* a[below..equal_end) == p */
        }
        lo = equal_end; /* past p at least */
    }
    return a[k];
}

/* The median of a[0..n) as numpy defines it (the mean of the two middle values for an even
 * count), given that the elements of ranks first..k of the whole set are the elements of ranks
 * first - offset..k - offset of a; reorders a. */
GG_V3_CLONE
static double median_ranks(double *a, long n, long offset, long whole_n)
{
    const long k = whole_n / 2 - offset;
    const double upper = select_kth(a, n, k);
    if (whole_n % 2 == 1) {
        return upper;
    }
    double lower = a[0];
    for (long j = 1; j < k; j++) {
        if (a[j] > lower) {
            lower = a[j];
        }
    }
    return (lower + upper) / 2.0;
}

/* Counts the values of a[0..n) below lo and gathers those within [lo, hi] into win; returns
 * how many it gathered. With centre finite, a[j] is first replaced by |a[j] - centre| (the MAD
 * needs the deviations both here and for the full selection). Two values per step, the
 * comparisons as lane masks; a value is written to win always and kept by the count, so no
 * branch depends on the data. Inlined into median_near, so that it is compiled in both of its
 * clones (the x86-64-v3 one without the register copies of two-operand SSE2). */
static inline __attribute__((always_inline)) long gather_window(double *restrict a, long n,
                                                                double centre, double lo, double hi,
                                                                double *restrict win, long *below)
{
    const int dev = isfinite(centre);
    const v2d c2 = {centre, centre};
    const v2d lo2 = {lo, lo};
    const v2d hi2 = {hi, hi};
    const v2i abs_mask = {INT64_MAX, INT64_MAX};
    v2i under = {0, 0};
    long inside = 0;
    long j = 0;
    for (; j + 2 <= n; j += 2) {
        v2d x = ld2(a + j);
        if (dev) {
            x = (v2d)((v2i)(x - c2) & abs_mask);
            st2(a + j, x);
        }
        const v2i in = (x >= lo2) & (x <= hi2);
        under -= x < lo2;
        win[inside] = x[0];
        inside -= in[0];
        win[inside] = x[1];
        inside -= in[1];
    }
    long nb = under[0] + under[1];
    for (; j < n; j++) {
        if (dev) {
            a[j] = fabs(a[j] - centre);
        }
        const double x = a[j];
        win[inside] = x;
        inside += (x >= lo) & (x <= hi);
        nb += x < lo;
    }
    *below = nb;
    return inside;
}

/* The median of a[0..n) (reordered; with centre finite, of |a[j] - centre|), looked for first
 * among the values within [lo, hi], which win (n doubles) receives. The middle ranks are inside
 * that window when fewer than them lie below lo and more above: then the window's own ranks give
 * the same values, and the full set is selected only when the window misses. NaN bounds make an
 * empty window. Every a[j] is finite. */
GG_V3_CLONE
static double median_near(double *restrict a, long n, double centre, double lo, double hi,
                          double *restrict win)
{
    long below = 0;
    const long inside = gather_window(a, n, centre, lo, hi, win, &below);
    const long k = n / 2;
    const long first = n % 2 == 1 ? k : k - 1;
    if (below <= first && k < below + inside) {
        return median_ranks(win, inside, below, n);
    }
    return median_ranks(a, n, 0, n);
}

/* Minimum and maximum with the index of their first occurrence, and the sum (the summary of one
 * statistic; gathered by extremes2_t and first_eq). Every value is finite (clamped SOC,
 * plausible voltage, GOOD finite temperature). */
typedef struct {
    double sum;
    double lo;
    double hi;
    long lo_idx;
    long hi_idx;
} extremes_t;

/* NaN for an empty set (the index is still -1). */
static void ext_close(extremes_t *e, long count)
{
    if (count == 0) {
        e->lo = NAN;
        e->hi = NAN;
    }
}

/* Running minimum and maximum of two lanes, values only: the index of the first occurrence is
 * found afterwards by a scan (first_eq), so that ties resolve to the first cell as before. */
typedef struct {
    v2d lo;
    v2d hi;
} extremes2_t;

static inline void ext2_init(extremes2_t *e)
{
    const v2d inf = {INFINITY, INFINITY};
    e->lo = inf;
    e->hi = -inf;
}

/* Pushes x where m is set (every x pushed is finite). */
static inline void ext2_push(extremes2_t *e, v2d x, v2i m)
{
    const v2d inf = {INFINITY, INFINITY};
    e->lo = min2(sel2(m, x, inf), e->lo);
    e->hi = max2(sel2(m, x, -inf), e->hi);
}

static inline void ext2_push_all(extremes2_t *e, v2d x)
{
    e->lo = min2(x, e->lo);
    e->hi = max2(x, e->hi);
}

static inline double lo_of(const extremes2_t *e) { return fmin(e->lo[0], e->lo[1]); }
static inline double hi_of(const extremes2_t *e) { return fmax(e->hi[0], e->hi[1]); }

/* Into e->lo_idx and e->hi_idx: the first i with x[i] == e->lo (e->hi) and flags == NULL or
 * flags[i] & bit set when want, clear when not; -1 if none. One scan for both, four cells at a
 * time until one of them equals either value: a match is rare, so the loop runs without taken
 * branches. */
GG_V3_CLONE
static void first_eq(const double *x, const uint32_t *flags, uint32_t bit, int want, size_t n,
                     extremes_t *e)
{
    const double lo = e->lo;
    const double hi = e->hi;
    const v2d lo2 = {lo, lo};
    const v2d hi2 = {hi, hi};
    long lo_idx = -1;
    long hi_idx = -1;
    size_t i = 0;
    while (i < n && (lo_idx < 0 || hi_idx < 0)) {
        if (i + 4 <= n) {
            const v2d a = ld2(x + i);
            const v2d b = ld2(x + i + 2);
            const v2i m = (a == lo2) | (a == hi2) | (b == lo2) | (b == hi2);
            if ((m[0] | m[1]) == 0) {
                i += 4;
                continue;
            }
        }
        const size_t end = i + 4 <= n ? i + 4 : n;
        for (; i < end; i++) {
            if (flags != NULL && ((flags[i] & bit) != 0) != want) {
                continue;
            }
            lo_idx = lo_idx < 0 && x[i] == lo ? (long)i : lo_idx;
            hi_idx = hi_idx < 0 && x[i] == hi ? (long)i : hi_idx;
        }
    }
    e->lo_idx = lo_idx;
    e->hi_idx = hi_idx;
}

/* What pass 1b needs besides the cells, and what it gathers. */
typedef struct {
    const gg_cells_cfg_t *cfg;
    double dt;
} pass1_in_t;

typedef struct {
    double *scratch; /* the plausible readings, in cell order */
    long n_plaus;
    long n_predict_only;
    double v_sum; /* of the cells taken one by one */
    v2d v_sum2;   /* of the quiet pairs: a chain of additions half as long */
    extremes2_t v;
} pass1_acc_t;

/* Pass 1b for cell i alone. Inlined, like every function given an accumulator: one that is
 * passed to a call lives in memory, and its running sums and extremes then wait on store
 * forwarding every step. */
static inline __attribute__((always_inline)) void
pass1_cell(const gg_cell_state_t *restrict st, const double *restrict v, const double *restrict t,
           const uint8_t *restrict tq, size_t i, const pass1_in_t *p, pass1_acc_t *restrict a)
{
    const gg_cells_cfg_t *cfg = p->cfg;
    uint32_t fl = st->flags[i];
    const double vi = v[i];
    const int in_range = (fl & IN_RANGE) != 0;
    const int v_good = (fl & GG_CELL_V_BAD) == 0;
    const int bad_reading = !in_range || (fl & GATE_FAIL) != 0;
    fl &= ~GATE_FAIL;
    double age = st->age_s[i];
    if (in_range) {
        age = 0.0;
        st->v_last[i] = vi;
        a->scratch[a->n_plaus++] = vi;
        const v2d v2 = {vi, vi};
        ext2_push_all(&a->v, v2);
        a->v_sum += vi;
    } else {
        age = age + p->dt;
    }
    st->age_s[i] = age;
    const double ti = t[i];
    const int t_good = tq[i] == Q_GOOD && isfinite(ti);
    uint8_t *cnt = st->count + 8 * i;
    uint64_t counts;
    memcpy(&counts, cnt, sizeof counts);
    /* The common case: no flag, no run in progress, no set condition. Every debounce step
     * would leave the flags and the zero counters as they are, so they are skipped. */
    const int quiet = (fl & DEBOUNCED) == 0 && counts == 0 && !bad_reading && !(vi > cfg->ov_set)
                      && !(vi < cfg->uv_set) && t_good && !(ti > cfg->ot_set)
                      && !(ti < cfg->ut_set);
    if (!quiet) {
        fl = debounce(fl, GG_CELL_OV, &cnt[CNT_OV], in_range, vi > cfg->ov_set, vi < cfg->ov_clear,
                      cfg);
        fl = debounce(fl, GG_CELL_UV, &cnt[CNT_UV], in_range, (vi < cfg->uv_set),
                      (vi > cfg->uv_clear), cfg);
        fl = debounce(fl, GG_CELL_IMPLAUSIBLE, &cnt[CNT_IMPL], v_good, bad_reading, !bad_reading,
                      cfg);
        fl = debounce(fl, GG_CELL_OT, &cnt[CNT_OT], t_good, ti > cfg->ot_set, ti < cfg->ot_clear,
                      cfg);
        fl = debounce(fl, GG_CELL_UT, &cnt[CNT_UT], t_good, (ti < cfg->ut_set),
                      (ti > cfg->ut_clear), cfg);
    }
    fl |= (uint32_t)!t_good * GG_CELL_T_BAD;
    fl |= (uint32_t)(age > cfg->stale_s) * GG_CELL_STALE;
    a->n_predict_only += (fl & GG_CELL_PREDICT_ONLY) != 0;
    st->flags[i] = fl;
}

/* Pass 1b for cells i and i + 1 when both are quiet (plausible reading through the gate, GOOD
 * temperature, no flag, no run, no set condition): then pass1_cell would only record the reading
 * and leave the flags as they are (age 0 is never stale, stale_s >= 0). Returns 0, having
 * written nothing, when either is not. */
static inline __attribute__((always_inline)) int
pass1_pair(const gg_cell_state_t *restrict st, const double *restrict v, const double *restrict t,
           const uint8_t *restrict tq, size_t i, const pass1_in_t *p, pass1_acc_t *restrict a)
{
    const gg_cells_cfg_t *cfg = p->cfg;
    const uint32_t f0 = st->flags[i];
    const uint32_t f1 = st->flags[i + 1];
    uint64_t counts[2];
    memcpy(counts, st->count + 8 * i, sizeof counts);
    const v2d v2 = ld2(v + i);
    const v2d t2 = ld2(t + i);
    const v2d ov = {cfg->ov_set, cfg->ov_set};
    const v2d uv = {cfg->uv_set, cfg->uv_set};
    const v2d ot = {cfg->ot_set, cfg->ot_set};
    const v2d ut = {cfg->ut_set, cfg->ut_set};
    /* v is finite where IN_RANGE; t must be finite for t_good. */
    const v2d zero = {0.0, 0.0};
    const v2i ok = (v2 <= ov) & (v2 >= uv) & ((t2 - t2) == zero) & (t2 <= ot) & (t2 >= ut);
    const int quiet = ((f0 | f1) & (DEBOUNCED | GATE_FAIL)) == 0 && (f0 & f1 & IN_RANGE) != 0
                      && (counts[0] | counts[1]) == 0 && (tq[i] | tq[i + 1]) == Q_GOOD
                      && (ok[0] & ok[1]) != 0;
    if (!quiet) {
        return 0;
    }
    st2(st->age_s + i, zero);
    st2(st->v_last + i, v2);
    a->scratch[a->n_plaus] = v2[0];
    a->scratch[a->n_plaus + 1] = v2[1];
    a->n_plaus += 2;
    ext2_push_all(&a->v, v2);
    a->v_sum2 += v2;
    a->n_predict_only += ((f0 & GG_CELL_PREDICT_ONLY) != 0) + ((f1 & GG_CELL_PREDICT_ONLY) != 0);
    return 1;
}

/* What pass 2 needs besides the cells. */
typedef struct {
    double med, dev_set, dev_clear, max_age, min_v, max_temp;
    int dev_usable, by_voltage;
    const gg_cells_cfg_t *cfg;
} pass2_in_t;

/* What pass 2 gathers: string-wide statistics and the target, and one board's interlocks, all
 * as two lanes merged at the end (counts as minus the sum of all-ones masks). */
typedef struct {
    extremes2_t soc;
    extremes2_t temp;
    extremes2_t low; /* only lo used: the balancing target */
    v2d soc_sum;
    v2i n_temp;
    v2i n_faulted;
    v2i il; /* the board's GG_BAL_IL_* bits, one accumulator rather than one per bit (fewer
             * registers: the others stay out of memory) */
} pass2_acc_t;

static inline void pass2_init(pass2_acc_t *a)
{
    const v2i zero_i = {0, 0};
    const v2d zero = {0.0, 0.0};
    ext2_init(&a->soc);
    ext2_init(&a->temp);
    ext2_init(&a->low);
    a->soc_sum = zero;
    a->n_temp = zero_i;
    a->n_faulted = zero_i;
}

/* The flags of one cell after the deviation debounce; returns them. */
static inline uint32_t pass2_flags(const gg_cell_state_t *restrict st, const double *restrict v,
                                   size_t i, const pass2_in_t *p)
{
    uint32_t fl = st->flags[i];
    const int usable = p->dev_usable && (fl & IN_RANGE) != 0;
    fl &= ~IN_RANGE;
    const double d = fabs(v[i] - p->med);
    uint8_t *cnt = st->count + 8 * i;
    fl = debounce(fl, GG_CELL_DEVIATION, &cnt[CNT_DEV], usable, d > p->dev_set, d < p->dev_clear,
                  p->cfg);
    st->flags[i] = fl;
    return fl;
}

/* The pair (x[i], x[i + 1]), or (x[i], x[i]) for dup. */
static inline v2d ld_pair(const double *x, size_t i, int dup)
{
    return dup ? (v2d){x[i], x[i]} : ld2(x + i);
}

/* Pass 2 for cells i and j (j == i + 1, or with dup j == i for the odd last cell of a board: the
 * statistics then see it twice, which changes nothing, and the counts and sum once). */
static inline __attribute__((always_inline)) void
pass2_pair(const gg_cell_state_t *restrict st, const double *restrict v, const double *restrict t,
           const uint8_t *restrict tq, size_t i, const int dup, const pass2_in_t *p,
           pass2_acc_t *restrict a)
{
    const size_t j = dup ? i : i + 1;
    uint32_t fi = st->flags[i];
    uint32_t fj = st->flags[j];
    /* The deviation debounce runs only where it can change something: a flag, a run in
     * progress or a set condition; else it would leave flags and counters as they are. */
    const v2d vv = ld_pair(v, i, dup);
    const v2i abs_mask = {INT64_MAX, INT64_MAX};
    const v2d d = (v2d)((v2i)(vv - p->med) & abs_mask);
    const v2d dev_set = {p->dev_set, p->dev_set};
    const v2i usable = {-(int64_t)((fi & IN_RANGE) != 0), -(int64_t)((fj & IN_RANGE) != 0)};
    const uint32_t set = p->dev_usable ? bits2(usable & (d > dev_set)) : 0u;
    if (((fi | fj) & GG_CELL_DEVIATION) != 0 || st->count[8 * i + CNT_DEV] != 0
        || st->count[8 * j + CNT_DEV] != 0 || set != 0) {
        fi = pass2_flags(st, v, i, p);
        fj = dup ? fi : pass2_flags(st, v, j, p);
    } else {
        fi &= ~IN_RANGE;
        fj &= ~IN_RANGE;
        st->flags[i] = fi;
        st->flags[j] = fj;
    }
    const v2i fl = {(int64_t)fi, (int64_t)fj};
    const v2i zero_i = {0, 0};
    const v2i faulted = (fl & GG_CELL_FAULTS) != zero_i;
    const v2i t_good = (fl & GG_CELL_T_BAD) == zero_i;
    const v2i once = {-1, dup ? 0 : -1}; /* counts and sums see a duplicate once */
    const v2d soc = ld_pair(st->soc, i, dup);
    const v2d ti = ld_pair(t, i, dup);
    const v2d v_last = ld_pair(st->v_last, i, dup);
    const v2d age = ld_pair(st->age_s, i, dup);
    const v2i tq_good = {-(int64_t)(tq[i] == Q_GOOD), -(int64_t)(tq[j] == Q_GOOD)};
    const v2d min_v = {p->min_v, p->min_v};
    const v2d max_temp = {p->max_temp, p->max_temp};
    const v2d max_age = {p->max_age, p->max_age};
    const v2d zero = {0.0, 0.0};

    a->soc_sum += (v2d)(once & (v2i)soc);
    a->n_temp -= t_good & once;
    a->n_faulted -= faulted & once;
    ext2_push_all(&a->soc, soc);
    ext2_push(&a->temp, ti, t_good);

    /* gg_cell_interlock, written as !(ok) so that NaN interlocks too. */
    const v2i age_ok = age <= max_age;
    const v2i il_low_v = {GG_BAL_IL_LOW_V, GG_BAL_IL_LOW_V};
    const v2i il_hot = {GG_BAL_IL_HOT, GG_BAL_IL_HOT};
    const v2i il_stale = {GG_BAL_IL_STALE, GG_BAL_IL_STALE};
    const v2i il_fault = {GG_BAL_IL_FAULT, GG_BAL_IL_FAULT};
    a->il |= (~(v_last >= min_v) & il_low_v) | (~(tq_good & (ti <= max_temp)) & il_hot)
             | (~age_ok & il_stale) | (faulted & il_fault);

    /* gg_cell_good: not faulted, finite v_last, fresh. */
    const v2i good = ~faulted & ((v_last - v_last) == zero) & age_ok;
    ext2_push(&a->low, p->by_voltage ? v_last : soc, good);
}

static inline uint32_t pass2_interlock(const pass2_acc_t *a)
{
    return (uint32_t)(a->il[0] | a->il[1]);
}

/* What the passes of one cycle hand on to the later ones and to the summary. */
typedef struct {
    extremes_t v; /* plausible voltages */
    extremes_t soc;
    extremes_t temp; /* GOOD finite temperatures */
    long n_plaus;
    long n_predict_only;
    long n_faulted;
    long n_temp;
    double med;   /* of the plausible voltages, NaN without one */
    double sigma; /* max(1.4826 MAD, dev_sigma_min), NaN without a plausible voltage */
    long low;     /* the lowest good cell, the balancing target; -1 without one */
} cycle_t;

/* The arguments of gg_cells_step: every pointer it follows set, and a finite dt > 0. */
static int step_args_ok(const gg_cells_ctx_t *ctx, double dt, const double *v, const uint8_t *vq,
                        const double *t, const uint8_t *tq)
{
    return ctx != NULL && v != NULL && vq != NULL && t != NULL && tq != NULL && ctx->n != 0
           && soa_ok(ctx) && ctx->param != NULL && ctx->cfg != NULL && ctx->ocv != NULL
           && ctx->hyst != NULL && ctx->scratch != NULL && ctx->summary != NULL
           && ctx->excess_ah != NULL && ctx->bleed_s != NULL && ctx->board_mask != NULL
           && ctx->board_interlock != NULL && ctx->n <= (size_t)INT32_MAX && pos_finite(dt);
}

/* Pass 1a without a current (not finite): no model, so the state is held and the uncertainty
 * grows; no reading is used. */
static inline __attribute__((always_inline)) void hold_pass(const gg_cells_ctx_t *ctx,
                                                            const ekf_in_t *ek, int hyst_on,
                                                            const double *v, const uint8_t *vq)
{
    const gg_cell_state_t *restrict st = ctx->state;
    for (size_t i = 0; i < ctx->n; i++) {
        const double vi = v[i];
        const int v_good = vq[i] == Q_GOOD && isfinite(vi);
        const int in_range = v_good && vi >= ek->v_lo && vi <= ek->v_hi;
        st->p00[i] = st->p00[i] + ek->qs;
        st->p11[i] = st->p11[i] + ek->qv;
        st->p22[i] = st->p22[i] + (hyst_on ? ek->qh : 0.0);
        st->ocv[i] = ocv_at(ek->ocv, ek->m, st->soc[i]);
        st->innov[i] = NAN;
        st->flags[i] = ekf_bits(st->flags[i], v_good, in_range, 0, 0) | GG_CELL_NO_CURRENT;
    }
}

/* Pass 1a: the EKF, leaving this cycle's reading verdict in the flags. Copies of the filter are
 * chosen per call: the one without hysteresis (M == 0 everywhere and no decay, where it is exact)
 * drops its decay, lookup and terms; both run on four lanes where the CPU has them, unless the
 * context asks for two. */
static inline __attribute__((always_inline)) void
ekf_pass(const gg_cells_ctx_t *ctx, double dt, double current, const double *v, const uint8_t *vq)
{
    const gg_cells_cfg_t *cfg = ctx->cfg;
    int hyst_on = cfg->hyst_gamma != 0.0;
    for (size_t k = 0; k < ctx->n_ocv && !hyst_on; k++) {
        hyst_on = ctx->hyst[k] != 0.0;
    }
    ekf_in_t ek;
    ek.ocv = ctx->ocv;
    ek.hyst = ctx->hyst;
    ek.m = ctx->n_ocv;
    ek.current = current;
    ek.dt = dt;
    ek.qs = cfg->q_soc * dt;
    ek.qv = cfg->q_v1 * dt;
    ek.qh = cfg->q_h * dt;
    ek.sgn_i = current > 0.0 ? 1.0 : (current < 0.0 ? -1.0 : 0.0);
    ek.abs_i = fabs(current);
    ek.jump_v = cfg->jump_v;
    ek.r_v = cfg->r_v;
    ek.v_lo = cfg->v_lo;
    ek.v_hi = cfg->v_hi;
    ek.decay = cfg->hyst_gamma > 0.0;
    if (!isfinite(current)) {
        hold_pass(ctx, &ek, hyst_on, v, vq);
        return;
    }
    const gg_cell_state_t *restrict st = ctx->state;
    const gg_cell_coef_t *restrict coef = ctx->coef;
#if GG_QUAD
    if (ctx->lanes != 2 && gg_has_quad()) {
        if (hyst_on) {
            ekf_quad_hyst(st, coef, ctx->n, v, vq, &ek);
        } else {
            ekf_quad_plain(st, coef, ctx->n, v, vq, &ek);
        }
        return;
    }
#endif
    if (hyst_on) {
        ekf_all(st, coef, ctx->n, v, vq, &ek, 1);
    } else {
        ekf_all(st, coef, ctx->n, v, vq, &ek, 0);
    }
}

/* Pass 1b: the flags that need only the cell itself, and the voltage statistics (into cy->v,
 * n_plaus, n_predict_only; the plausible readings into scratch). Two cells at a time where both
 * are quiet (see pass1_pair), else one by one. */
static inline __attribute__((always_inline)) void flag_pass(const gg_cells_ctx_t *ctx, double dt,
                                                            const double *v, const double *t,
                                                            const uint8_t *tq, cycle_t *cy)
{
    /* The array pointers and thresholds are read from local copies, as in the EKF (ekf_from):
     * the pass's stores (memcpy, which may alias anything) would otherwise reload them from
     * *ctx->state and *ctx->cfg every step. */
    const gg_cell_state_t state = *ctx->state;
    const gg_cells_cfg_t cfg = *ctx->cfg;
    const gg_cell_state_t *restrict st = &state;
    const size_t n = ctx->n;
    pass1_in_t p1;
    p1.cfg = &cfg;
    p1.dt = dt;
    pass1_acc_t a1;
    a1.scratch = ctx->scratch;
    a1.n_plaus = 0;
    a1.n_predict_only = 0;
    a1.v_sum = 0.0;
    a1.v_sum2 = (v2d){0.0, 0.0};
    ext2_init(&a1.v);
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        if (!pass1_pair(st, v, t, tq, i, &p1, &a1)) {
            pass1_cell(st, v, t, tq, i, &p1, &a1);
            pass1_cell(st, v, t, tq, i + 1, &p1, &a1);
        }
    }
    if (i < n) {
        pass1_cell(st, v, t, tq, i, &p1, &a1);
    }
    cy->n_plaus = a1.n_plaus;
    cy->n_predict_only = a1.n_predict_only;
    extremes_t *ev = &cy->v;
    ev->sum = a1.v_sum + (a1.v_sum2[0] + a1.v_sum2[1]);
    ev->lo = NAN;
    ev->hi = NAN;
    ev->lo_idx = -1;
    ev->hi_idx = -1;
    if (a1.n_plaus > 0) {
        /* IN_RANGE is still in the flags until pass 2. */
        ev->lo = lo_of(&a1.v);
        ev->hi = hi_of(&a1.v);
        first_eq(v, st->flags, IN_RANGE, 1, n, ev);
        ev->lo = v[ev->lo_idx];
        ev->hi = v[ev->hi_idx];
    }
}

/* Robust centre and spread of the plausible readings (scratch is reordered, then reused), into
 * cy->med and cy->sigma, and the hints of the next cycle. */
static inline __attribute__((always_inline)) void robust_pass(gg_cells_ctx_t *ctx, cycle_t *cy)
{
    cy->med = NAN;
    cy->sigma = NAN;
    const long n_plaus = cy->n_plaus;
    if (n_plaus == 0) {
        return;
    }
    /* Searched first near last cycle's values: the median moved with the mean (a current step
     * shifts every cell alike), the MAD hardly at all. A window of a quarter MAD each side holds
     * about a tenth of a normal string. excess_ah is free until the plan. */
    double *restrict scratch = ctx->scratch;
    const double mean = cy->v.sum / (double)n_plaus;
    const double guess = ctx->hint_median + (mean - ctx->hint_mean);
    const double half = WINDOW_MADS * ctx->hint_mad;
    const double med =
        median_near(scratch, n_plaus, NAN, guess - half, guess + half, ctx->excess_ah);
    const double mad = median_near(scratch, n_plaus, med, ctx->hint_mad - half,
                                   ctx->hint_mad + half, ctx->excess_ah);
    ctx->hint_median = med;
    ctx->hint_mad = mad;
    ctx->hint_mean = mean;
    double sigma = MAD_TO_SIGMA * mad;
    if (sigma < ctx->cfg->dev_sigma_min) {
        sigma = ctx->cfg->dev_sigma_min;
    }
    cy->med = med;
    cy->sigma = sigma;
}

/* Pass 2 over every board: deviation from the string, the fault count, the interlocks and the
 * balancing target, which may only be taken from a cell that is not faulted after this cycle's
 * flags. Two cells per instruction (see pass2_pair). */
static inline __attribute__((always_inline)) void board_pass(const gg_cells_ctx_t *ctx,
                                                             const double *v, const double *t,
                                                             const uint8_t *tq, const cycle_t *cy,
                                                             pass2_acc_t *acc)
{
    const gg_cells_cfg_t *cfg = ctx->cfg;
    const gg_cell_state_t *restrict st = ctx->state;
    const size_t n = ctx->n;
    pass2_in_t p2;
    p2.med = cy->med;
    p2.dev_set = cfg->dev_k_set * cy->sigma;
    p2.dev_clear = cfg->dev_k_clear * cy->sigma;
    p2.dev_usable = cy->n_plaus >= 3;
    p2.by_voltage = cfg->bal_mode == GG_BAL_VOLTAGE;
    p2.max_age = cfg->bal_max_age_s;
    p2.min_v = cfg->bal_min_v;
    p2.max_temp = cfg->bal_max_temp;
    p2.cfg = cfg;
    pass2_init(acc);
    const size_t cpb = (size_t)cfg->cells_per_board;
    for (size_t lo = 0, b = 0; lo < n; lo += cpb, b++) {
        const size_t hi = lo + cpb < n ? lo + cpb : n;
        const v2i zero_i = {0, 0};
        acc->il = zero_i;
        size_t i = lo;
        for (; i + 1 < hi; i += 2) {
            pass2_pair(st, v, t, tq, i, 0, &p2, acc);
        }
        if (i < hi) {
            /* The odd cell twice: a duplicate changes no minimum, maximum or first index. */
            pass2_pair(st, v, t, tq, i, 1, &p2, acc);
        }
        ctx->board_interlock[b] = pass2_interlock(acc);
    }
}

/* The first good cell whose SOC (VOLTAGE mode: last plausible voltage) is low_x, the lowest
 * among good cells; -1 when balancing is off or no cell is good. */
static long target_cell(const gg_cells_ctx_t *ctx, double low_x)
{
    const gg_cells_cfg_t *cfg = ctx->cfg;
    const gg_cell_state_t *st = ctx->state;
    if (cfg->bal_mode == GG_BAL_OFF || !(low_x < INFINITY)) {
        return -1;
    }
    const double *x = cfg->bal_mode == GG_BAL_VOLTAGE ? st->v_last : st->soc;
    for (size_t i = 0; i < ctx->n; i++) {
        if (x[i] == low_x && gg_cell_good(st, i, cfg)) {
            return (long)i;
        }
    }
    return -1;
}

/* Pass 2 and what it gathered: counts, the SOC and temperature extremes with the index of their
 * first occurrence (ties resolve to the first cell), and the balancing target cell. */
static inline __attribute__((always_inline)) void string_pass(const gg_cells_ctx_t *ctx,
                                                              const double *v, const double *t,
                                                              const uint8_t *tq, cycle_t *cy)
{
    const gg_cell_state_t *restrict st = ctx->state;
    const size_t n = ctx->n;
    pass2_acc_t acc;
    board_pass(ctx, v, t, tq, cy, &acc);
    cy->n_faulted = (long)(acc.n_faulted[0] + acc.n_faulted[1]);
    cy->n_temp = (long)(acc.n_temp[0] + acc.n_temp[1]);
    extremes_t *es = &cy->soc;
    extremes_t *et = &cy->temp;
    es->sum = acc.soc_sum[0] + acc.soc_sum[1];
    es->lo = lo_of(&acc.soc);
    es->hi = hi_of(&acc.soc);
    first_eq(st->soc, NULL, 0, 0, n, es);
    et->sum = 0.0;
    et->lo = lo_of(&acc.temp);
    et->hi = hi_of(&acc.temp);
    et->lo_idx = -1;
    et->hi_idx = -1;
    if (cy->n_temp > 0) {
        first_eq(t, st->flags, GG_CELL_T_BAD, 0, n, et);
    }
    /* The value of that cell: -0.0 and 0.0 compare equal, and the first one is reported. */
    es->lo = st->soc[es->lo_idx];
    es->hi = st->soc[es->hi_idx];
    if (cy->n_temp > 0) {
        et->lo = t[et->lo_idx];
        et->hi = t[et->hi_idx];
    }
    cy->low = target_cell(ctx, lo_of(&acc.low));
    ext_close(et, cy->n_temp);
}

/* The summary of the cycle, but for the balancing target and n_bleeding (the plan's). */
static void write_summary(const gg_cells_ctx_t *ctx, const cycle_t *cy)
{
    gg_cells_summary_t *sm = ctx->summary;
    const extremes_t *es = &cy->soc;
    const extremes_t *ev = &cy->v;
    const extremes_t *et = &cy->temp;
    sm->soc_min = es->lo;
    sm->soc_max = es->hi;
    sm->soc_mean = es->sum / (double)ctx->n;
    sm->soc_min_idx = es->lo_idx;
    sm->soc_max_idx = es->hi_idx;
    sm->v_min = ev->lo;
    sm->v_max = ev->hi;
    sm->v_mean = cy->n_plaus > 0 ? ev->sum / (double)cy->n_plaus : NAN;
    sm->v_spread = ev->hi - ev->lo;
    sm->v_min_idx = ev->lo_idx;
    sm->v_max_idx = ev->hi_idx;
    sm->v_median = cy->med;
    sm->v_sigma = cy->sigma;
    sm->t_min = et->lo;
    sm->t_max = et->hi;
    sm->t_min_idx = et->lo_idx;
    sm->t_max_idx = et->hi_idx;
    sm->n_plausible = cy->n_plaus;
    sm->n_predict_only = cy->n_predict_only;
    sm->n_faulted = cy->n_faulted;
}

/* One cycle, pass by pass; the passes are inlined here, so that they are compiled in both of
 * this function's clones. */
GG_V3_CLONE
int gg_cells_step(gg_cells_ctx_t *ctx, double dt, double current, const double *v,
                  const uint8_t *vq, const double *t, const uint8_t *tq)
{
    if (!step_args_ok(ctx, dt, v, vq, t, tq)) {
        return GG_EINVAL;
    }
    if (!(dt == ctx->coef_dt)) {
        refresh_coef(ctx, dt);
    }
    cycle_t cy;
    ekf_pass(ctx, dt, current, v, vq);
    flag_pass(ctx, dt, v, t, tq, &cy);
    robust_pass(ctx, &cy);
    string_pass(ctx, v, t, tq, &cy);
    write_summary(ctx, &cy);
    gg_cells_plan(ctx, cy.low);
    return (int)cy.n_faulted;
}
