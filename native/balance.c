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

/* The bleed mask of the board of cells lo..hi (no interlock): every candidate (more than the
 * window over the target) when they fit the thermal limit, else the max_on with the most excess
 * (SOC mode) or the highest voltage, ties to the lower cell. Scores of candidates are finite.
 *
 * The last cycle's mask is tried first: charges move little in 0.1 s, so it is usually still the
 * answer. It is taken only when it provably is: max_on candidates whose weakest beats the best
 * candidate left out, in the order the ranking uses. Anything else, including a mask that was
 * never a plan, falls through to the ranking, so the result never depends on the guess. */
static uint32_t board_plan(const gg_cell_state_t *restrict st, const double *restrict excess_ah,
                           size_t lo, size_t hi, double target, double window, int by_voltage,
                           int max_on, uint32_t guess)
{
    double score[32];
    uint32_t cand = 0;
    /* The weakest guessed candidate (lowest score, ties to the higher cell) and the best other
     * one (highest score, ties to the lower cell), without a branch on the data. */
    double in_s = INFINITY;
    int in_k = -1;
    double out_s = -INFINITY;
    int out_k = 32;
    int n_in = 0;
    for (size_t i = lo; i < hi; i++) {
        const int k = (int)(i - lo);
        const double x = by_voltage ? st->v_last[i] : st->soc[i];
        const double over_target = x - target;
        const double s = by_voltage ? over_target : excess_ah[i];
        const int is_cand = over_target > window;
        const int is_in = is_cand & (int)((guess >> k) & 1u);
        const int is_out = is_cand & !is_in;
        score[k] = s;
        cand |= (uint32_t)is_cand << k;
        n_in += is_in;
        const int weaker = is_in & (s <= in_s);
        in_s = weaker ? s : in_s;
        in_k = weaker ? k : in_k;
        const int better = is_out & (s > out_s);
        out_s = better ? s : out_s;
        out_k = better ? k : out_k;
    }
    const int n_cand = __builtin_popcount(cand);
    if (n_cand <= max_on) {
        return cand;
    }
    if (n_in == max_on && __builtin_popcount(guess) == max_on
        && (in_s > out_s || (in_s == out_s && in_k < out_k))) {
        return guess;
    }
    /* max_on rounds of the highest remaining score; a taken one, or a cell that is no
     * candidate, is -inf. */
    for (int k = 0; k < (int)(hi - lo); k++) {
        score[k] = ((cand >> k) & 1u) ? score[k] : -INFINITY;
    }
    uint32_t mask = 0;
    for (int pick = 0; pick < max_on; pick++) {
        const int best = first_max(score, (int)(hi - lo));
        score[best] = -INFINITY;
        mask |= 1u << best;
    }
    return mask;
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
        uint32_t mask = 0;
        if (il == 0) {
            mask = board_plan(st, excess_ah, lo, hi, target, window, by_voltage, max_on,
                              ctx->board_mask[b]);
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
