/* Passive balancing plan over a string of cells (see gridgate.h, cells). Pure bookkeeping on the
 * states the EKF left: no model, no allocation. */
#include <math.h>

#include "gridgate.h"

enum { Q_GOOD = 0 };

static int cell_good(const gg_cell_state_t *s, const gg_cells_cfg_t *cfg)
{
    return (s->flags & GG_CELL_FAULTS) == 0 && isfinite(s->v_last)
           && s->age_s <= cfg->bal_max_age_s;
}

/* The lowest SOC (or last voltage) among good cells; -1 when there is none. Ties: lowest index. */
static long lowest_good(const gg_cell_state_t *st, size_t n, const gg_cells_cfg_t *cfg,
                        int by_voltage)
{
    long best = -1;
    double best_x = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!cell_good(&st[i], cfg)) {
            continue;
        }
        const double x = by_voltage ? st[i].v_last : st[i].soc;
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
        || ctx->summary == NULL || ctx->cfg->cells_per_board < 1
        || ctx->cfg->cells_per_board > 32) {
        return GG_EINVAL;
    }
    const gg_cells_cfg_t *cfg = ctx->cfg;
    gg_cell_state_t *st = ctx->state;
    const size_t n = ctx->n;
    const int mode = cfg->bal_mode;
    const int by_voltage = mode == GG_BAL_VOLTAGE;
    const long low = mode == GG_BAL_OFF ? -1 : lowest_good(st, n, cfg, by_voltage);
    /* The SOC every cell is bled down to: in VOLTAGE mode, that of the lowest-voltage cell. */
    const double ref_soc = low >= 0 ? st[low].soc : NAN;
    const double target = low >= 0 ? (by_voltage ? st[low].v_last : st[low].soc) : NAN;
    const double window = by_voltage ? cfg->bal_v_window : cfg->bal_soc_window;
    ctx->summary->target_soc = mode == GG_BAL_SOC ? target : NAN;
    ctx->summary->target_v = mode == GG_BAL_VOLTAGE ? target : NAN;

    const size_t cpb = (size_t)cfg->cells_per_board;
    const size_t n_boards = (n + cpb - 1) / cpb;
    const int max_on = cfg->bal_max_per_board;
    const double k_time = 3600.0 * cfg->bal_bleed_ohm;
    long n_bleeding = 0;
    for (size_t b = 0; b < n_boards; b++) {
        const size_t lo = b * cpb;
        const size_t hi = lo + cpb < n ? lo + cpb : n;
        uint32_t il = mode == GG_BAL_OFF ? GG_BAL_IL_OFF : (low < 0 ? GG_BAL_IL_NO_TARGET : 0u);
        /* Candidates of this board: (cell, score), at most 32. */
        size_t cand[32];
        double score[32];
        size_t n_cand = 0;
        for (size_t i = lo; i < hi; i++) {
            gg_cell_state_t *s = &st[i];
            const double over = s->soc - ref_soc; /* NaN without a target: no excess */
            const double excess = over > 0.0 ? over * ctx->param[i].capacity_ah : 0.0;
            ctx->excess_ah[i] = excess;
            /* The bleed current is v / R, so the time is charge / current. */
            ctx->bleed_s[i] = excess > 0.0 ? excess * k_time / s->v_last : 0.0;
            s->flags &= ~GG_CELL_BLEED;
            if (!(s->v_last >= cfg->bal_min_v)) {
                il |= GG_BAL_IL_LOW_V;
            }
            if (!(tq[i] == Q_GOOD && t[i] <= cfg->bal_max_temp)) { /* NaN fails <= too */
                il |= GG_BAL_IL_HOT;
            }
            if (!(s->age_s <= cfg->bal_max_age_s)) {
                il |= GG_BAL_IL_STALE;
            }
            if (s->flags & GG_CELL_FAULTS) {
                il |= GG_BAL_IL_FAULT;
            }
            const double x = by_voltage ? s->v_last : s->soc;
            /* Written unconditionally, kept by the count: no branch on the data. */
            cand[n_cand] = i;
            score[n_cand] = by_voltage ? x - target : excess;
            n_cand += (size_t)(x - target > window);
        }
        uint32_t mask = 0;
        if (il == 0) {
            /* The thermal limit: up to max_on cells, the most excess first, ties to the lower
             * cell. A taken candidate's score becomes -inf so it is not taken again. */
            for (int pick = 0; pick < max_on && (size_t)pick < n_cand; pick++) {
                size_t best = 0;
                for (size_t j = 1; j < n_cand; j++) {
                    if (score[j] > score[best]) {
                        best = j;
                    }
                }
                const size_t cell = cand[best];
                score[best] = -INFINITY;
                mask |= 1u << (cell - lo);
                st[cell].flags |= GG_CELL_BLEED;
                n_bleeding++;
            }
        }
        ctx->board_mask[b] = mask;
        ctx->board_interlock[b] = il;
    }
    ctx->summary->n_bleeding = n_bleeding;
    return GG_OK;
}
