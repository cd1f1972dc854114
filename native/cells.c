/* Per-cell SOC EKF, fault flags and string statistics (see gridgate.h, cells). The balancing plan
 * is in balance.c. Arithmetic is written in the same order as the numpy reference
 * (gateway/estimate/cells_ref.py) so the two agree to rounding, not just to a tolerance. */
#include <math.h>
#include <string.h>

#include "gridgate.h"

enum { Q_GOOD = 0, MAX_DEBOUNCE = 255, MAX_CELLS_PER_BOARD = 32 };

/* MAD of a normal sample times this estimates its standard deviation. */
static const double MAD_TO_SIGMA = 1.4826;

enum { CNT_OV = 0, CNT_UV = 1, CNT_OT = 2, CNT_UT = 3, CNT_DEV = 4, CNT_IMPL = 5 };

/* Pass 1 tells pass 2 that the reading was plausible; never visible outside the call. */
static const uint32_t IN_RANGE = 1u << 31;

static const uint32_t DEBOUNCED = GG_CELL_OV | GG_CELL_UV | GG_CELL_OT | GG_CELL_UT
                                  | GG_CELL_DEVIATION | GG_CELL_IMPLAUSIBLE;

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

int gg_cells_check(const gg_cells_ctx_t *ctx)
{
    if (ctx == NULL || ctx->n == 0 || ctx->n > (size_t)INT32_MAX || ctx->n_ocv < 2
        || ctx->ocv == NULL || ctx->hyst == NULL || ctx->param == NULL
        || ctx->cfg == NULL || ctx->state == NULL || ctx->coef == NULL || ctx->scratch == NULL
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
static inline double clamp11(double x) { return x < -1.0 ? -1.0 : (x > 1.0 ? 1.0 : x); }

int gg_cells_reset(gg_cells_ctx_t *ctx, const double *soc0, double p0_soc, double p0_v1,
                   double p0_h)
{
    if (ctx == NULL || ctx->state == NULL || ctx->n == 0 || soc0 == NULL
        || !(p0_soc >= 0.0 && isfinite(p0_soc) && p0_v1 >= 0.0 && isfinite(p0_v1)
             && p0_h >= 0.0 && isfinite(p0_h))) {
        return GG_EINVAL;
    }
    for (size_t i = 0; i < ctx->n; i++) {
        if (!isfinite(soc0[i])) {
            return GG_EINVAL;
        }
    }
    for (size_t i = 0; i < ctx->n; i++) {
        gg_cell_state_t *s = &ctx->state[i];
        s->soc = clamp01(soc0[i]);
        s->v1 = 0.0;
        s->h = 0.0;
        s->p00 = p0_soc;
        s->p01 = 0.0;
        s->p02 = 0.0;
        s->p11 = p0_v1;
        s->p12 = 0.0;
        s->p22 = p0_h;
        s->ocv = NAN;
        s->v_last = NAN;
        s->age_s = INFINITY;
        s->innov = NAN;
        s->flags = 0;
        for (int k = 0; k < 8; k++) {
            s->count[k] = 0;
        }
        s->pad = 0;
    }
    ctx->coef_dt = NAN;
    return GG_OK;
}

/* OCV and the hysteresis half gap M, piecewise linear on the same uniform grid: one segment
 * index for both, the slopes of the segment are the derivatives. The index is clamped to the
 * table, so values outside 0..1 extrapolate the end segments. It is floor(x) clamped to 0..m-2,
 * computed by truncation where x is positive (a conversion is far cheaper than floor() without
 * SSE4.1). */
typedef struct {
    double ocv, slope, m, m_slope;
} lookup_t;

static inline lookup_t lookup(const double *ocv, const double *hyst, size_t m, double soc)
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
    const double d = ocv[k + 1] - ocv[k];
    const double dm = hyst[k + 1] - hyst[k];
    lookup_t r;
    r.ocv = ocv[k] + f * d;
    r.slope = d * span;
    r.m = hyst[k] + f * dm;
    r.m_slope = dm * span;
    return r;
}

/* lookup without the hysteresis table (m and m_slope left 0). */
static inline lookup_t lookup_ocv(const double *ocv, size_t m, double soc)
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
    const double d = ocv[k + 1] - ocv[k];
    lookup_t r;
    r.ocv = ocv[k] + f * d;
    r.slope = d * span;
    r.m = 0.0;
    r.m_slope = 0.0;
    return r;
}

/* What the EKF of one cell needs besides the cell. */
typedef struct {
    const double *ocv;
    const double *hyst;
    size_t m;
    double current, dt, qs, qv, qh, sgn_i, abs_i, jump_v, r_v;
    int decay; /* hyst_gamma > 0: else d = exp(-0) = 1 for every cell and the exp is skipped */
} ekf_in_t;

typedef struct {
    double soc;    /* after predict and update */
    int gate_fail; /* a GOOD finite reading the current does not explain */
    int used;      /* the update ran */
} ekf_out_t;

/* Predict and (when the reading is plausible and passes the gate) update one cell. With
 * with_hyst == 0 the caller guarantees hyst_gamma == 0 and M == 0 on the whole grid: then d = 1,
 * M = dM/dsoc = 0 and h stays inside [-1, 1] (every write clamps it), so each dropped term is an
 * exact 0 or 1 of the general formula and both copies give the same numbers. */
static inline __attribute__((always_inline)) ekf_out_t
ekf_cell(gg_cell_state_t *restrict s, const gg_cell_coef_t *restrict c, double r0, double vi,
         int v_good, int in_range, const ekf_in_t *k, const int with_hyst)
{
    const double current = k->current;
    const double a = c->a;
    const double soc = clamp01(s->soc - (current * k->dt) * c->inv_q);
    const double v1 = a * s->v1 + c->b * current;
    double hs, p02, p12, p22, h0, hm, innov;
    const double p00 = s->p00 + k->qs;
    const double p01 = a * s->p01;
    const double p11 = a * a * s->p11 + k->qv;
    double ocv_now;
    if (with_hyst) {
        const double d = k->decay ? exp(-c->g * k->abs_i) : 1.0;
        hs = clamp11(d * s->h - (1.0 - d) * k->sgn_i);
        p02 = d * s->p02;
        p12 = a * d * s->p12;
        p22 = d * d * s->p22 + k->qh;
        const lookup_t lk = lookup(k->ocv, k->hyst, k->m, soc);
        h0 = lk.slope + lk.m_slope * hs; /* d v / d soc */
        hm = lk.m;                       /* d v / d h; d v / d v1 = -1 */
        ocv_now = lk.ocv;
        innov = vi - (lk.ocv + hm * hs - v1 - r0 * current);
    } else {
        hs = s->h;
        p02 = s->p02;
        p12 = a * s->p12;
        p22 = s->p22 + k->qh;
        const lookup_t lk = lookup_ocv(k->ocv, k->m, soc);
        h0 = lk.slope;
        hm = 0.0;
        ocv_now = lk.ocv;
        innov = vi - (lk.ocv - v1 - r0 * current);
    }
    ekf_out_t out;
    out.gate_fail = v_good && !(fabs(innov) <= k->jump_v);
    out.used = in_range && !out.gate_fail;
    s->ocv = ocv_now;
    s->innov = v_good ? innov : NAN;
    if (out.used) {
        double ph0, ph1, ph2, inv_s;
        if (with_hyst) {
            ph0 = p00 * h0 - p01 + p02 * hm;
            ph1 = p01 * h0 - p11 + p12 * hm;
            ph2 = p02 * h0 - p12 + p22 * hm;
            inv_s = 1.0 / (h0 * ph0 - ph1 + hm * ph2 + k->r_v);
        } else {
            ph0 = p00 * h0 - p01;
            ph1 = p01 * h0 - p11;
            ph2 = p02 * h0 - p12;
            inv_s = 1.0 / (h0 * ph0 - ph1 + k->r_v);
        }
        const double k0 = ph0 * inv_s;
        const double k1 = ph1 * inv_s;
        const double k2 = ph2 * inv_s;
        out.soc = clamp01(soc + k0 * innov);
        s->v1 = v1 + k1 * innov;
        s->h = clamp11(hs + k2 * innov);
        s->p00 = p00 - k0 * ph0;
        s->p01 = p01 - k0 * ph1;
        s->p02 = p02 - k0 * ph2;
        s->p11 = p11 - k1 * ph1;
        s->p12 = p12 - k1 * ph2;
        s->p22 = p22 - k2 * ph2;
    } else {
        out.soc = soc;
        s->v1 = v1;
        s->h = hs;
        s->p00 = p00;
        s->p01 = p01;
        s->p02 = p02;
        s->p11 = p11;
        s->p12 = p12;
        s->p22 = p22;
    }
    return out;
}

static void refresh_coef(gg_cells_ctx_t *ctx, double dt)
{
    /* dt is usually the same nominal period every call: one exp per cell only when it changes. */
    for (size_t i = 0; i < ctx->n; i++) {
        const gg_cell_param_t *p = &ctx->param[i];
        const double a = exp(-dt / p->tau_s);
        ctx->coef[i].a = a;
        ctx->coef[i].b = p->r1 * (1.0 - a);
        ctx->coef[i].inv_q = 1.0 / (3600.0 * p->capacity_ah);
        ctx->coef[i].g = ctx->cfg->hyst_gamma * dt * ctx->coef[i].inv_q;
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

static void swap(double *a, long i, long j)
{
    const double t = a[i];
    a[i] = a[j];
    a[j] = t;
}

/* k-th smallest of a[0..n) (Hoare quickselect, median-of-three pivot); reorders a so that
 * a[0..k) <= a[k] <= a(k..n). */
static double select_kth(double *a, long n, long k)
{
    long lo = 0;
    long hi = n - 1;
    while (hi > lo) {
        const long mid = lo + (hi - lo) / 2;
        if (a[mid] < a[lo]) {
            swap(a, mid, lo);
        }
        if (a[hi] < a[lo]) {
            swap(a, hi, lo);
        }
        if (a[hi] < a[mid]) {
            swap(a, hi, mid);
        }
        const double pivot = a[mid];
        long i = lo;
        long j = hi;
        while (i <= j) {
            while (a[i] < pivot) {
                i++;
            }
            while (a[j] > pivot) {
                j--;
            }
            if (i <= j) {
                swap(a, i, j);
                i++;
                j--;
            }
        }
        if (k <= j) {
            hi = j;
        } else if (k >= i) {
            lo = i;
        } else {
            return a[k]; /* between the partitions every element equals the pivot */
        }
    }
    return a[k];
}

/* Median as numpy defines it: the mean of the two middle values for an even count. */
static double median(double *a, long n)
{
    const long k = n / 2;
    const double upper = select_kth(a, n, k);
    if (n % 2 == 1) {
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

/* Minimum and maximum with the index of their first occurrence, and the sum. Starting from
 * +-inf with strict comparisons keeps the first of equal values without a "first value" test;
 * every value pushed is finite (clamped SOC, plausible voltage, GOOD finite temperature). */
typedef struct {
    double sum;
    double lo;
    double hi;
    long lo_idx;
    long hi_idx;
} extremes_t;

static void ext_init(extremes_t *e)
{
    e->sum = 0.0;
    e->lo = INFINITY;
    e->hi = -INFINITY;
    e->lo_idx = -1;
    e->hi_idx = -1;
}

static inline void ext_push(extremes_t *e, double x, long i)
{
    if (x < e->lo) {
        e->lo = x;
        e->lo_idx = i;
    }
    if (x > e->hi) {
        e->hi = x;
        e->hi_idx = i;
    }
    e->sum += x;
}

/* NaN for an empty set (the index is still -1). */
static void ext_close(extremes_t *e, long count)
{
    if (count == 0) {
        e->lo = NAN;
        e->hi = NAN;
    }
}

int gg_cells_step(gg_cells_ctx_t *ctx, double dt, double current, const double *v,
                  const uint8_t *vq, const double *t, const uint8_t *tq)
{
    if (ctx == NULL || v == NULL || vq == NULL || t == NULL || tq == NULL || ctx->n == 0
        || ctx->state == NULL || ctx->param == NULL || ctx->cfg == NULL || ctx->ocv == NULL
        || ctx->hyst == NULL || ctx->coef == NULL || ctx->scratch == NULL || ctx->summary == NULL
        || ctx->excess_ah == NULL || ctx->bleed_s == NULL || ctx->board_mask == NULL
        || ctx->board_interlock == NULL || ctx->n > (size_t)INT32_MAX || !pos_finite(dt)) {
        return GG_EINVAL;
    }
    if (!(dt == ctx->coef_dt)) {
        refresh_coef(ctx, dt);
    }
    const gg_cells_cfg_t *cfg = ctx->cfg;
    const size_t n = ctx->n;
    const size_t m = ctx->n_ocv;
    const double *ocv = ctx->ocv;
    const int cur_ok = isfinite(current);
    const double qs = cfg->q_soc * dt;
    const double qv = cfg->q_v1 * dt;
    extremes_t es;
    extremes_t ev;
    extremes_t et;
    ext_init(&es);
    ext_init(&ev);
    ext_init(&et);
    long n_plaus = 0;
    long n_temp = 0;
    long n_predict_only = 0;

    /* Pass 1: the EKF, the flags that need only the cell itself, and the statistics, so that
     * each reading and state is loaded once. */
    gg_cell_state_t *restrict st = ctx->state;
    const gg_cell_coef_t *restrict coef = ctx->coef;
    const gg_cell_param_t *restrict par = ctx->param;
    double *restrict scratch = ctx->scratch;
    const double v_lo = cfg->v_lo;
    const double v_hi = cfg->v_hi;
    const double jump_v = cfg->jump_v;
    const double r_v = cfg->r_v;
    const double sgn_i = current > 0.0 ? 1.0 : (current < 0.0 ? -1.0 : 0.0);
    const double abs_i = fabs(current);
    const double *hyst = ctx->hyst;
    const double qh = cfg->q_h * dt;
    /* M == 0 everywhere and no decay: the copy of the EKF without hysteresis is exact. */
    int hyst_on = cfg->hyst_gamma != 0.0;
    for (size_t k = 0; k < m && !hyst_on; k++) {
        hyst_on = hyst[k] != 0.0;
    }
    ekf_in_t ek;
    ek.ocv = ocv;
    ek.hyst = hyst;
    ek.m = m;
    ek.current = current;
    ek.dt = dt;
    ek.qs = qs;
    ek.qv = qv;
    ek.qh = qh;
    ek.sgn_i = sgn_i;
    ek.abs_i = abs_i;
    ek.jump_v = jump_v;
    ek.r_v = r_v;
    ek.decay = cfg->hyst_gamma > 0.0;
    const double ov_set = cfg->ov_set;
    const double uv_set = cfg->uv_set;
    const double ot_set = cfg->ot_set;
    const double ut_set = cfg->ut_set;
    const double stale_s = cfg->stale_s;
    for (size_t i = 0; i < n; i++) {
        gg_cell_state_t *s = &st[i];
        const double vi = v[i];
        const int v_good = vq[i] == Q_GOOD && isfinite(vi);
        const int in_range = v_good && vi >= v_lo && vi <= v_hi;
        uint32_t fl = (s->flags & DEBOUNCED) | GG_CELL_PREDICT_ONLY;
        int gate_fail = 0;
        double soc_now;
        if (cur_ok) {
            /* Two copies of one body, chosen per call: the loop-invariant branch costs nothing
             * and the copy without hysteresis drops its lookup, decay and terms. */
            const ekf_out_t e = hyst_on ? ekf_cell(s, &coef[i], par[i].r0, vi, v_good, in_range,
                                                   &ek, 1)
                                        : ekf_cell(s, &coef[i], par[i].r0, vi, v_good, in_range,
                                                   &ek, 0);
            soc_now = e.soc;
            gate_fail = e.gate_fail;
            fl &= e.used ? ~(uint32_t)GG_CELL_PREDICT_ONLY : ~0u;
        } else {
            /* No current, no model: hold the state and let the uncertainty grow. */
            soc_now = s->soc;
            s->p00 = s->p00 + qs;
            s->p11 = s->p11 + qv;
            s->p22 = s->p22 + qh;
            s->ocv = lookup(ocv, hyst, m, soc_now).ocv;
            s->innov = NAN;
            fl |= GG_CELL_NO_CURRENT;
        }
        s->soc = soc_now;

        const int bad_reading = !in_range || gate_fail;
        double age = s->age_s;
        if (in_range) {
            age = 0.0;
            s->v_last = vi;
            scratch[n_plaus++] = vi;
            ext_push(&ev, vi, (long)i);
            fl |= IN_RANGE;
        } else {
            age = age + dt;
        }
        s->age_s = age;
        const double ti = t[i];
        const int t_good = tq[i] == Q_GOOD && isfinite(ti);
        uint64_t counts;
        memcpy(&counts, s->count, sizeof counts);
        /* The common case: no flag, no run in progress, no set condition. Every debounce step
         * would leave the flags and the zero counters as they are, so they are skipped. */
        const int quiet = (fl & DEBOUNCED) == 0 && counts == 0 && !bad_reading && !(vi > ov_set)
                          && !(vi < uv_set) && t_good && !(ti > ot_set) && !(ti < ut_set);
        if (!quiet) {
            fl = debounce(fl, GG_CELL_OV, &s->count[CNT_OV], in_range, vi > ov_set,
                          vi < cfg->ov_clear, cfg);
            fl = debounce(fl, GG_CELL_UV, &s->count[CNT_UV], in_range, vi < uv_set,
                          vi > cfg->uv_clear, cfg);
            fl = debounce(fl, GG_CELL_IMPLAUSIBLE, &s->count[CNT_IMPL], v_good, bad_reading,
                          !bad_reading, cfg);
            fl = debounce(fl, GG_CELL_OT, &s->count[CNT_OT], t_good, ti > ot_set,
                          ti < cfg->ot_clear, cfg);
            fl = debounce(fl, GG_CELL_UT, &s->count[CNT_UT], t_good, ti < ut_set,
                          ti > cfg->ut_clear, cfg);
        }
        fl |= (uint32_t)!t_good * GG_CELL_T_BAD;
        fl |= (uint32_t)!v_good * GG_CELL_V_BAD;
        fl |= (uint32_t)(age > stale_s) * GG_CELL_STALE;
        n_predict_only += (fl & GG_CELL_PREDICT_ONLY) != 0;
        s->flags = fl;
    }
    ext_close(&ev, n_plaus);

    /* Robust centre and spread of the plausible readings (scratch is reordered, then reused). */
    double med = NAN;
    double sigma = NAN;
    if (n_plaus > 0) {
        med = median(scratch, n_plaus);
        for (long j = 0; j < n_plaus; j++) {
            scratch[j] = fabs(scratch[j] - med);
        }
        const double mad = median(scratch, n_plaus);
        sigma = MAD_TO_SIGMA * mad;
        if (sigma < cfg->dev_sigma_min) {
            sigma = cfg->dev_sigma_min;
        }
    }

    /* Pass 2: deviation from the string, the fault count and the balancing target, which may
     * only be taken from a cell that is not faulted after this cycle's flags. */
    const int dev_usable = n_plaus >= 3;
    const double dev_set = cfg->dev_k_set * sigma;
    const double dev_clear = cfg->dev_k_clear * sigma;
    const int mode = cfg->bal_mode;
    const int find_low = mode != GG_BAL_OFF;
    const int by_voltage = mode == GG_BAL_VOLTAGE;
    const double max_age = cfg->bal_max_age_s;
    const double min_v = cfg->bal_min_v;
    const double max_temp = cfg->bal_max_temp;
    const size_t cpb = (size_t)cfg->cells_per_board;
    long n_faulted = 0;
    long low = -1;
    double low_x = 0.0;
    for (size_t lo = 0, b = 0; lo < n; lo += cpb, b++) {
        const size_t hi = lo + cpb < n ? lo + cpb : n;
        uint32_t il = 0;
        for (size_t i = lo; i < hi; i++) {
            gg_cell_state_t *s = &st[i];
            uint32_t fl = s->flags;
            const int usable = dev_usable && (fl & IN_RANGE) != 0;
            fl &= ~IN_RANGE;
            const double d = fabs(v[i] - med);
            /* Quiet as in pass 1: flag clear, no run, no set condition. */
            if ((fl & GG_CELL_DEVIATION) != 0 || s->count[CNT_DEV] != 0
                || (usable && d > dev_set)) {
                fl = debounce(fl, GG_CELL_DEVIATION, &s->count[CNT_DEV], usable, d > dev_set,
                              d < dev_clear, cfg);
            }
            s->flags = fl;
            /* SOC and temperature statistics here rather than in pass 1, where registers are
             * short; T_BAD says whether the temperature is GOOD and finite. */
            const double soc = s->soc;
            const double ti = t[i];
            ext_push(&es, soc, (long)i);
            if ((fl & GG_CELL_T_BAD) == 0) {
                ext_push(&et, ti, (long)i);
                n_temp++;
            }
            il |= gg_cell_interlock(s, ti, tq[i], min_v, max_temp, max_age);
            const int faulted = (fl & GG_CELL_FAULTS) != 0;
            n_faulted += faulted;
            if (find_low && !faulted && isfinite(s->v_last) && s->age_s <= max_age) {
                const double x = by_voltage ? s->v_last : soc;
                if (low < 0 || x < low_x) {
                    low = (long)i;
                    low_x = x;
                }
            }
        }
        ctx->board_interlock[b] = il;
    }

    ext_close(&et, n_temp);

    gg_cells_summary_t *sm = ctx->summary;
    sm->soc_min = es.lo;
    sm->soc_max = es.hi;
    sm->soc_mean = es.sum / (double)n;
    sm->soc_min_idx = es.lo_idx;
    sm->soc_max_idx = es.hi_idx;
    sm->v_min = ev.lo;
    sm->v_max = ev.hi;
    sm->v_mean = n_plaus > 0 ? ev.sum / (double)n_plaus : NAN;
    sm->v_spread = ev.hi - ev.lo;
    sm->v_min_idx = ev.lo_idx;
    sm->v_max_idx = ev.hi_idx;
    sm->v_median = med;
    sm->v_sigma = sigma;
    sm->t_min = et.lo;
    sm->t_max = et.hi;
    sm->t_min_idx = et.lo_idx;
    sm->t_max_idx = et.hi_idx;
    sm->n_plausible = n_plaus;
    sm->n_predict_only = n_predict_only;
    sm->n_faulted = n_faulted;

    gg_cells_plan(ctx, low);
    return (int)n_faulted;
}
