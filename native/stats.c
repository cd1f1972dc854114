/* Windowed summaries and report-by-exception over arrays of points (see gridgate.h, stats). */
#include <math.h>

#include "gridgate.h"

enum { GG_QUALITY_GOOD = 0 };

static void stat_empty(gg_stat_t *s)
{
    s->count = 0;
    s->bad = 0;
    s->min = NAN;
    s->max = NAN;
    s->mean = NAN;
    s->m2 = 0.0;
    s->last = NAN;
    s->first_ts = NAN;
    s->last_ts = NAN;
}

int gg_stats_reset(gg_stat_t *st, size_t n)
{
    if (n > 0 && st == NULL) {
        return GG_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        stat_empty(&st[i]);
    }
    return GG_OK;
}

static void stat_push(gg_stat_t *s, double v, double ts)
{
    if (s->count == 0) {
        s->count = 1;
        s->min = v;
        s->max = v;
        s->mean = v;
        s->m2 = 0.0;
        s->first_ts = ts;
    } else {
        s->count += 1;
        /* Scaling before subtracting keeps the mean finite even for values near DBL_MAX of
         * opposite signs, where v - mean itself would overflow. */
        const double inv = 1.0 / (double)s->count;
        const double mean_old = s->mean;
        const double mean_new = mean_old + (v * inv - mean_old * inv);
        /* Both factors have the same sign (mean_new lies between mean_old and v), so m2 only
         * grows; an overflowing spread gives +inf, not NaN. */
        s->m2 += (v - mean_old) * (v - mean_new);
        s->mean = mean_new;
        if (v < s->min) {
            s->min = v;
        }
        if (v > s->max) {
            s->max = v;
        }
    }
    s->last = v;
    s->last_ts = ts;
}

int gg_stats_add(gg_stat_t *st, size_t n_points, size_t n_frames, const double *values,
                 const uint8_t *quality, const double *ts)
{
    if (n_points > 0 && n_frames > SIZE_MAX / n_points) {
        return GG_EINVAL;
    }
    if ((n_points > 0 && st == NULL) || (n_frames > 0 && ts == NULL)
        || (n_points * n_frames > 0 && (values == NULL || quality == NULL))) {
        return GG_EINVAL;
    }
    /* A NaN timestamp would make a non-empty window look empty; refuse before touching state. */
    for (size_t f = 0; f < n_frames; f++) {
        if (!isfinite(ts[f])) {
            return GG_EINVAL;
        }
    }
    for (size_t f = 0; f < n_frames; f++) {
        const double *row = values + f * n_points;
        const uint8_t *qrow = quality + f * n_points;
        const double t = ts[f];
        for (size_t p = 0; p < n_points; p++) {
            const double v = row[p];
            if (qrow[p] == GG_QUALITY_GOOD && isfinite(v)) {
                stat_push(&st[p], v, t);
            } else {
                st[p].bad += 1;
            }
        }
    }
    return GG_OK;
}

int gg_stats_variance(const gg_stat_t *st, size_t n, double *out)
{
    if (n > 0 && (st == NULL || out == NULL)) {
        return GG_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const int64_t c = st[i].count;
        out[i] = c == 0 ? NAN : c == 1 ? 0.0 : st[i].m2 / (double)c;
    }
    return GG_OK;
}

static int value_moved(double v, double last, double deadband)
{
    const int v_nan = isnan(v);
    const int last_nan = isnan(last);
    if (v_nan || last_nan) {
        return v_nan != last_nan;
    }
    /* v != last first: equal infinities would otherwise give inf - inf = NaN. */
    return v != last && fabs(v - last) > deadband;
}

int gg_rbe(size_t n, const double *value, const uint8_t *quality, double *last_reported,
           uint8_t *last_quality, const double *deadband, uint8_t *out_report)
{
    if (n == 0) {
        return 0;
    }
    if (value == NULL || quality == NULL || last_reported == NULL || last_quality == NULL
        || deadband == NULL || out_report == NULL) {
        return GG_EINVAL;
    }
    if (n > (size_t)INT32_MAX) {
        return GG_EINVAL; /* the count of reported points must fit the int return */
    }
    for (size_t i = 0; i < n; i++) {
        if (!(deadband[i] >= 0.0)) { /* also refuses NaN */
            return GG_EINVAL;
        }
    }
    int reported = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t q = quality[i];
        const int report =
            q != last_quality[i]
            || (q == GG_QUALITY_GOOD && value_moved(value[i], last_reported[i], deadband[i]));
        if (report) {
            last_reported[i] = value[i];
            last_quality[i] = q;
            reported += 1;
        }
        out_report[i] = (uint8_t)report;
    }
    return reported;
}
