/* Passive balancing plan over a string of cells (see gridgate.h, cells). Pure bookkeeping on the
 * states the EKF left: no model, no allocation. */
#include <math.h>

#include "gridgate.h"
#include "lanes.h"

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
        || ctx->param == NULL || ctx->cfg == NULL || ctx->excess_ah == NULL || ctx->bleed_s == NULL
        || ctx->board_mask == NULL || ctx->board_interlock == NULL || ctx->summary == NULL
        || ctx->state->flags == NULL || ctx->state->soc == NULL || ctx->state->v_last == NULL
        || ctx->state->age_s == NULL || ctx->cfg->cells_per_board < 1
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

/* Set bits of x. __builtin_popcount is a libgcc call on x86-64 without -mpopcnt, which the
 * baseline build does not assume. */
static inline int count_bits(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0fu;
    return (int)((x * 0x01010101u) >> 24);
}

/* What the plan of one board needs besides its cells. */
typedef struct {
    const gg_cell_state_t *st;
    const gg_cell_param_t *par;
    double *excess_ah;
    double *bleed_s;
    double ref_soc; /* the SOC every cell is bled down to; NaN without a target */
    double target;  /* of the score: SOC, or voltage in VOLTAGE mode */
    double window;
    double k_time; /* 3600 bal_bleed_ohm: hours to seconds over the bleed conductance */
    int by_voltage;
    int max_on;
} plan_in_t;

/* Excess and bleed time of cells i and i + 1 (written), and their score (returned): the
 * excess in SOC mode, the voltage over the target in VOLTAGE mode; *cand gets the lanes more
 * than the window over the target. Lanes without an excess are masked to +0, as the scalar
 * "excess > 0 ? ... : 0.0" gives. */
static inline v2d plan_pair(const plan_in_t *p, size_t i, v2i *cand)
{
    const gg_cell_state_t *st = p->st;
    const v2d zero = {0.0, 0.0};
    const v2d over = ld2(st->soc + i) - p->ref_soc; /* NaN without a target: no excess */
    const v2d cap = {p->par[i].capacity_ah, p->par[i + 1].capacity_ah};
    const v2d excess = (v2d)((over > zero) & (v2i)(over * cap));
    const v2d v_last = ld2(st->v_last + i);
    st2(p->excess_ah + i, excess);
    /* The bleed current is v / R, so the time is charge / current. */
    st2(p->bleed_s + i, (v2d)((excess > zero) & (v2i)(excess * p->k_time / v_last)));
    const v2d over_target = (p->by_voltage ? v_last : ld2(st->soc + i)) - p->target;
    const v2d window = {p->window, p->window};
    *cand = over_target > window;
    return p->by_voltage ? over_target : excess;
}

/* plan_pair for cell i alone (the odd last cell of a board, where a pair would read past its
 * parameters), both lanes that cell; the scalar form of the same operations. */
static inline v2d plan_cell(const plan_in_t *p, size_t i, v2i *cand)
{
    const gg_cell_state_t *st = p->st;
    const double over = st->soc[i] - p->ref_soc;
    const double excess = over > 0.0 ? over * p->par[i].capacity_ah : 0.0;
    p->excess_ah[i] = excess;
    p->bleed_s[i] = excess > 0.0 ? excess * p->k_time / st->v_last[i] : 0.0;
    const double over_target = (p->by_voltage ? st->v_last[i] : st->soc[i]) - p->target;
    const int64_t is_cand = -(int64_t)(over_target > p->window);
    const double score = p->by_voltage ? over_target : excess;
    *cand = (v2i){is_cand, is_cand};
    return (v2d){score, score};
}

/* Cells lo..hi of one board: writes their excess and bleed time, and returns the bleed mask
 * (0 when interlocked): every candidate when they fit the thermal limit, else the max_on with
 * the highest score, ties to the lower cell. Scores of candidates are finite.
 *
 * The last cycle's mask is tried first: charges move little in 0.1 s, so it is usually still the
 * answer. It is taken only when it provably is: max_on candidates, the lowest score among them
 * above the highest among the others (a tie is left to the ranking). Anything else, including a
 * mask that was never a plan, falls through to the ranking, so the result never depends on the
 * guess. */
static inline __attribute__((always_inline)) uint32_t
board_plan(const plan_in_t *p, size_t lo, size_t hi, int interlocked, uint32_t guess)
{
    double score[32];
    uint32_t cand = 0;
    const v2d inf = {INFINITY, INFINITY};
    v2d in_min = inf;   /* over the guessed candidates */
    v2d out_max = -inf; /* over the other candidates */
    const size_t m = hi - lo;
    for (size_t k = 0; k < m; k += 2) {
        const int pair = k + 1 < m;
        v2i c;
        const v2d s = pair ? plan_pair(p, lo + k, &c) : plan_cell(p, lo + k, &c);
        /* The guess's bits of the two lanes; a lone cell is in both. */
        const uint32_t gb = pair ? guess >> k : ((guess >> k) & 1u) * 3u;
        const v2i g = {-(int64_t)(gb & 1u), -(int64_t)((gb >> 1) & 1u)};
        st2(score + k, s); /* k + 1 <= 31: a lone cell means m <= 31 */
        in_min = min2(sel2(c & g, s, inf), in_min);
        out_max = max2(sel2(c & ~g, s, -inf), out_max);
        cand |= (bits2(c) & (pair ? 3u : 1u)) << k;
    }
    if (interlocked) {
        return 0;
    }
    const int max_on = p->max_on;
    if (count_bits(cand) <= max_on) {
        return cand;
    }
    if (count_bits(guess) == max_on && count_bits(cand & guess) == max_on
        && fmin(in_min[0], in_min[1]) > fmax(out_max[0], out_max[1])) {
        return guess;
    }
    /* max_on rounds of the highest remaining score; a taken one, or a cell that is no
     * candidate, is -inf. */
    for (size_t k = 0; k < m; k++) {
        score[k] = ((cand >> k) & 1u) ? score[k] : -INFINITY;
    }
    uint32_t mask = 0;
    for (int pick = 0; pick < max_on; pick++) {
        const int best = first_max(score, (int)m);
        score[best] = -INFINITY;
        mask |= 1u << best;
    }
    return mask;
}

GG_V3_CLONE
void gg_cells_plan(gg_cells_ctx_t *ctx, long low)
{
    const gg_cells_cfg_t *cfg = ctx->cfg;
    const gg_cell_state_t *restrict st = ctx->state;
    const size_t n = ctx->n;
    const int mode = cfg->bal_mode;
    plan_in_t p;
    p.st = st;
    p.par = ctx->param;
    p.excess_ah = ctx->excess_ah;
    p.bleed_s = ctx->bleed_s;
    p.by_voltage = mode == GG_BAL_VOLTAGE;
    /* In VOLTAGE mode every cell is bled down to the SOC of the lowest-voltage cell. */
    p.ref_soc = low >= 0 ? st->soc[low] : NAN;
    p.target = low >= 0 ? (p.by_voltage ? st->v_last[low] : st->soc[low]) : NAN;
    p.window = p.by_voltage ? cfg->bal_v_window : cfg->bal_soc_window;
    p.k_time = 3600.0 * cfg->bal_bleed_ohm;
    p.max_on = cfg->bal_max_per_board;
    ctx->summary->target_soc = mode == GG_BAL_SOC ? p.target : NAN;
    ctx->summary->target_v = mode == GG_BAL_VOLTAGE ? p.target : NAN;

    const size_t cpb = (size_t)cfg->cells_per_board;
    const size_t n_boards = (n + cpb - 1) / cpb;
    const uint32_t il0 = mode == GG_BAL_OFF ? GG_BAL_IL_OFF : (low < 0 ? GG_BAL_IL_NO_TARGET : 0u);
    long n_bleeding = 0;
    for (size_t b = 0; b < n_boards; b++) {
        const size_t lo = b * cpb;
        const size_t hi = lo + cpb < n ? lo + cpb : n;
        const uint32_t il = il0 | ctx->board_interlock[b];
        const uint32_t mask = board_plan(&p, lo, hi, il != 0, ctx->board_mask[b]);
        for (uint32_t bits = mask; bits != 0; bits &= bits - 1) {
            st->flags[lo + (size_t)__builtin_ctz(bits)] |= GG_CELL_BLEED;
            n_bleeding++;
        }
        ctx->board_mask[b] = mask;
        ctx->board_interlock[b] = il;
    }
    ctx->summary->n_bleeding = n_bleeding;
}
