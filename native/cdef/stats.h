/* Generated from native/gridgate.h by the build: edit the header, not this file. */
typedef struct {
    int64_t count;
    int64_t bad;
    double min;
    double max;
    double mean;
    double m2;
    double last;
    double first_ts;
    double last_ts;
} gg_stat_t;
int gg_stats_reset(gg_stat_t *st, size_t n);
int gg_stats_add(gg_stat_t *st, size_t n_points, size_t n_frames, const double *values,
                 const uint8_t *quality, const double *ts);
int gg_stats_variance(const gg_stat_t *st, size_t n, double *out);
int gg_rbe(size_t n, const double *value, const uint8_t *quality, double *last_reported,
           uint8_t *last_quality, const double *deadband, uint8_t *out_report);
