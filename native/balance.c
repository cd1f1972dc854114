/* Passive balancing plan over a string of cells (see gridgate.h, cells). Pure bookkeeping on the
 * states the EKF left: no model, no allocation. */
#include <math.h>

#include <string.h>

#include "gridgate.h"

typedef double v2d __attribute__((vector_size(16)));
typedef int64_t v2i __attribute__((vector_size(16)));

static inline v2d ld2(const double *p)
{
    v2d r;
    memcpy(&r, p, sizeof r);
    return r;
}

static inline void st2(double *p, v2d x) { memcpy(p, &x, sizeof x); }


/* (index, score) of a running maximum; the first index wins ties. */
typedef struct {
    int k;
    double s;
} best_t;

static inline best_t better(best_t a, best_t b)
{
    return (b.s > a.s || (b.s == a.s && b.k < a.k)) ? b : a;
}

static inline void keep_max(best_t *b, const double *score, int k)
{
    /* A select, not a branch: which score wins is data, not a pattern. */
    const int gt = score[k] > b->s;
    b->k = gt ? k : b->k;
    b->s = gt ? score[k] : b->s;
}

/* Index of the first maximum of score[0..n), n >= 1. Four running maxima over interleaved
 * entries, merged at the end: one would be a chain of n dependent compares. */
static int first_max(const double *score, int n)
{
    best_t b0 = {0, score[0]};
    best_t b1 = b0;
    best_t b2 = b0;
    best_t b3 = b0;
    int k = 1;
    for (; k + 4 <= n; k += 4) {
        keep_max(&b0, score, k);
        keep_max(&b1, score, k + 1);
        keep_max(&b2, score, k + 2);
        keep_max(&b3, score, k + 3);
    }
    for (; k < n; k++) {
        keep_max(&b0, score, k);
    }
    return better(better(b0, b1), better(b2, b3)).k;
}

/* The lowest SOC (or last voltage) among good cells; -1 when there is none. Ties: lowest index.
 * gg_cells_step finds the same cell in its last pass and calls gg_cells_plan directly. */
static long lowest_good(const gg_cell_state_t *st, size_t n, const gg_cells_cfg_t *cfg,
                        int by_voltage)
{
    long best = -1;
    double best_x = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!gg_cell_good(st, i, cfg)) {
            continue;
        }
        const double x = by_voltage ? st->v_last[i] : st->soc[i];
        if (best < 0 || x < best_x) {
            best = (long)i;
            best_x = x;
        }
    }
    return best;
}

int gg_cells_balance(gg_cells_ctx_t *ctx, const double *t, const uint8_t *tq)
{
    if (ctx == NULL || t == NULL || tq == NULL || ctx->n == 0 || ctx->state == NULL
        || ctx->param == NULL || ctx->cfg == NULL || ctx->excess_ah == NULL
        || ctx->bleed_s == NULL || ctx->board_mask == NULL || ctx->board_interlock == NULL
        || ctx->summary == NULL || ctx->state->flags == NULL || ctx->state->soc == NULL
        || ctx->state->v_last == NULL || ctx->state->age_s == NULL || ctx->cfg->cells_per_board < 1
        || ctx->cfg->cells_per_board > 32) {
        return GG_EINVAL;
    }
    const gg_cells_cfg_t *cfg = ctx->cfg;
    const gg_cell_state_t *st = ctx->state;
    const size_t n = ctx->n;
    const size_t cpb = (size_t)cfg->cells_per_board;
    for (size_t b = 0; b * cpb < n; b++) {
        uint32_t il = 0;
        for (size_t i = b * cpb; i < n && i < (b + 1) * cpb; i++) {
            st->flags[i] &= ~(uint32_t)GG_CELL_BLEED;
            il |= gg_cell_interlock(st, i, t[i], tq[i], cfg->bal_min_v, cfg->bal_max_temp,
                                    cfg->bal_max_age_s);
        }
        ctx->board_interlock[b] = il;
    }
    const int mode = cfg->bal_mode;
    gg_cells_plan(ctx, mode == GG_BAL_OFF ? -1 : lowest_good(st, n, cfg, mode == GG_BAL_VOLTAGE));
    return GG_OK;
}

void gg_cells_plan(gg_cells_ctx_t *ctx, long low)
{
    const gg_cells_cfg_t *cfg = ctx->cfg;
    const gg_cell_state_t *restrict st = ctx->state;
    const gg_cell_param_t *restrict par = ctx->param;
    double *restrict excess_ah = ctx->excess_ah;
    double *restrict bleed_s = ctx->bleed_s;
    const size_t n = ctx->n;
    const int mode = cfg->bal_mode;
    const int by_voltage = mode == GG_BAL_VOLTAGE;
    /* The SOC every cell is bled down to: in VOLTAGE mode, that of the lowest-voltage cell. */
    const double ref_soc = low >= 0 ? st->soc[low] : NAN;
    const double target = low >= 0 ? (by_voltage ? st->v_last[low] : st->soc[low]) : NAN;
    const double window = by_voltage ? cfg->bal_v_window : cfg->bal_soc_window;
    ctx->summary->target_soc = mode == GG_BAL_SOC ? target : NAN;
    ctx->summary->target_v = mode == GG_BAL_VOLTAGE ? target : NAN;

    const size_t cpb = (size_t)cfg->cells_per_board;
    const size_t n_boards = (n + cpb - 1) / cpb;
    const int max_on = cfg->bal_max_per_board;
    const double k_time = 3600.0 * cfg->bal_bleed_ohm;
    const uint32_t il0 = mode == GG_BAL_OFF ? GG_BAL_IL_OFF : (low < 0 ? GG_BAL_IL_NO_TARGET : 0u);
    /* Excess and bleed time of every cell, two per instruction; lanes without an excess are
     * masked to +0, as the scalar "excess > 0 ? ... : 0.0" gives. */
    const size_t n2 = n & ~(size_t)1;
    const v2d zero = {0.0, 0.0};
    for (size_t i = 0; i < n2; i += 2) {
        const v2d over = ld2(st->soc + i) - ref_soc; /* NaN without a target: no excess */
        const v2d cap = {par[i].capacity_ah, par[i + 1].capacity_ah};
        const v2d excess = (v2d)((over > zero) & (v2i)(over * cap));
        st2(excess_ah + i, excess);
        /* The bleed current is v / R, so the time is charge / current. */
        st2(bleed_s + i, (v2d)((excess > zero) & (v2i)(excess * k_time / ld2(st->v_last + i))));
    }
    for (size_t i = n2; i < n; i++) {
        const double over = st->soc[i] - ref_soc;
        const double excess = over > 0.0 ? over * par[i].capacity_ah : 0.0;
        excess_ah[i] = excess;
        bleed_s[i] = excess > 0.0 ? excess * k_time / st->v_last[i] : 0.0;
    }
    long n_bleeding = 0;
    for (size_t b = 0; b < n_boards; b++) {
        const size_t lo = b * cpb;
        const size_t hi = lo + cpb < n ? lo + cpb : n;
        const uint32_t il = il0 | ctx->board_interlock[b];
        /* Candidates of this board: (cell, score), at most 32. */
        double score[32];
        unsigned char cand[32];
        int n_cand = 0;
        for (size_t i = lo; i < hi; i++) {
            const double over_target = (by_voltage ? st->v_last[i] : st->soc[i]) - target;
            /* Written unconditionally, kept by the count: no branch on the data. */
            cand[n_cand] = (unsigned char)(i - lo);
            score[n_cand] = by_voltage ? over_target : excess_ah[i];
            n_cand += over_target > window;
        }
        /* The thermal limit: up to max_on cells, the most excess first, ties to the lower cell.
         * When they all fit, every candidate is taken without ranking. */
        uint32_t mask = 0;
        if (il == 0) {
            if (n_cand <= max_on) {
                for (int k = 0; k < n_cand; k++) {
                    mask |= 1u << cand[k];
                }
            } else {
                /* max_on rounds of the highest remaining score; a taken one becomes -inf. */
                for (int pick = 0; pick < max_on; pick++) {
                    const int best = first_max(score, n_cand);
                    score[best] = -INFINITY;
                    mask |= 1u << cand[best];
                }
            }
            for (uint32_t bits = mask; bits != 0; bits &= bits - 1) {
                st->flags[lo + (size_t)__builtin_ctz(bits)] |= GG_CELL_BLEED;
                n_bleeding++;
            }
        }
        ctx->board_mask[b] = mask;
        ctx->board_interlock[b] = il;
    }
    ctx->summary->n_bleeding = n_bleeding;
}
