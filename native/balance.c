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

static uint32_t board_interlock(const gg_cells_ctx_t *ctx, size_t lo, size_t hi, const double *t,
                                const uint8_t *tq)
{
    const gg_cells_cfg_t *cfg = ctx->cfg;
    uint32_t il = 0;
    for (size_t i = lo; i < hi; i++) {
        const gg_cell_state_t *s = &ctx->state[i];
        if (!(s->v_last >= cfg->bal_min_v)) {
            il |= GG_BAL_IL_LOW_V;
        }
        if (!(tq[i] == Q_GOOD && isfinite(t[i]) && t[i] <= cfg->bal_max_temp)) {
            il |= GG_BAL_IL_HOT;
        }
        if (!(s->age_s <= cfg->bal_max_age_s)) {
            il |= GG_BAL_IL_STALE;
        }
        if (s->flags & GG_CELL_FAULTS) {
            il |= GG_BAL_IL_FAULT;
        }
    }
    return il;
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

    for (size_t i = 0; i < n; i++) {
        const double over = st[i].soc - ref_soc; /* NaN without a target: no excess */
        const double excess = over > 0.0 ? over * ctx->param[i].capacity_ah : 0.0;
        ctx->excess_ah[i] = excess;
        /* Bleed current is ocv / R: time = charge / current. */
        ctx->bleed_s[i] = excess * 3600.0 * cfg->bal_bleed_ohm / st[i].ocv;
        st[i].flags &= ~GG_CELL_BLEED;
    }

    const size_t cpb = (size_t)cfg->cells_per_board;
    const size_t n_boards = (n + cpb - 1) / cpb;
    const int max_on = cfg->bal_max_per_board;
    long n_bleeding = 0;
    for (size_t b = 0; b < n_boards; b++) {
        const size_t lo = b * cpb;
        const size_t hi = lo + cpb < n ? lo + cpb : n;
        uint32_t il = board_interlock(ctx, lo, hi, t, tq);
        if (mode == GG_BAL_OFF) {
            il |= GG_BAL_IL_OFF;
        } else if (low < 0) {
            il |= GG_BAL_IL_NO_TARGET;
        }
        uint32_t mask = 0;
        if (il == 0) {
            /* The thermal limit: up to max_on cells, those with the most excess first. */
            for (int pick = 0; pick < max_on; pick++) {
                long best = -1;
                double best_score = 0.0;
                for (size_t i = lo; i < hi; i++) {
                    const uint32_t bit = 1u << (i - lo);
                    const double x = by_voltage ? st[i].v_last : st[i].soc;
                    if ((mask & bit) || !(x - target > window)) {
                        continue;
                    }
                    const double score = by_voltage ? x - target : ctx->excess_ah[i];
                    if (best < 0 || score > best_score) {
                        best = (long)i;
                        best_score = score;
                    }
                }
                if (best < 0) {
                    break;
                }
                mask |= 1u << ((size_t)best - lo);
                st[best].flags |= GG_CELL_BLEED;
                n_bleeding++;
            }
        }
        ctx->board_mask[b] = mask;
        ctx->board_interlock[b] = il;
    }
    ctx->summary->n_bleeding = n_bleeding;
    return GG_OK;
}
