/* gridgate native kernels: the public C API. One section per kernel; each section is also the
 * cffi cdef of that kernel (native/cdef/<kernel>.h) so the two cannot drift. */
#ifndef GRIDGATE_H
#define GRIDGATE_H

#include <stddef.h>
#include <stdint.h>

/* Bumped whenever a signature or a struct layout changes; gateway/estimate/_native.py refuses a
 * compiled module whose number differs from the one the Python side was written for. */
#define GG_NATIVE_VERSION 1

/* Status codes shared by every kernel. Kernels never abort and never print. */
#define GG_OK 0
#define GG_EINVAL (-1)   /* an argument is out of range (size, index, NULL) */
#define GG_ENOCONV (-2)  /* an iterative method did not converge within its cap */

int gg_native_version(void);

/* ---- stats: windowed summaries and report-by-exception (native/stats.c) ----------------------
 * A sample enters the statistics only when its quality is 0 (GOOD) and its value is finite; any
 * other sample only increments `bad`. Arrays of points are contiguous; frames are row-major
 * [n_frames][n_points]. Nothing is allocated; on any error status nothing has been written. */

/* Per-point running state; its layout is asserted against a numpy dtype at import (stats.py). An
 * empty window has count 0, m2 0 and NaN min/max/mean/last/first_ts/last_ts. mean/m2 follow
 * Welford; m2 may become +inf when the spread itself overflows, never NaN. */
typedef struct {
    int64_t count;   /* good samples */
    int64_t bad;     /* samples rejected: quality != GOOD or value not finite */
    double min;
    double max;
    double mean;
    double m2;       /* sum of squared deviations from the mean */
    double last;     /* value of the last good sample */
    double first_ts; /* timestamps of the first and last good sample */
    double last_ts;
} gg_stat_t;

/* Empties n windows. */
int gg_stats_reset(gg_stat_t *st, size_t n);
/* Adds n_frames frames of n_points values; ts[f] is the timestamp of frame f and must be finite
 * (GG_EINVAL otherwise, checked before anything is written). */
int gg_stats_add(gg_stat_t *st, size_t n_points, size_t n_frames, const double *values, const uint8_t *quality, const double *ts);
/* Population variance m2/count: 0 for one sample, NaN for none. */
int gg_stats_variance(const gg_stat_t *st, size_t n, double *out);
/* Report-by-exception over n points. Point i is reported when quality[i] != last_quality[i], or
 * quality[i] is GOOD and its value moved: exactly one of value/last_reported is NaN, or both are
 * numbers, differ, and |value - last_reported| > deadband[i]. A reported point updates
 * last_reported/last_quality; out_report[i] is 1 or 0. deadband must be >= 0 (inf allowed) and not
 * NaN. Returns the number of reported points, or a negative GG_ status. */
int gg_rbe(size_t n, const double *value, const uint8_t *quality, double *last_reported, uint8_t *last_quality, const double *deadband, uint8_t *out_report);

/* ---- decode: Modbus registers to numbers (native/decode.c) ------------------------------------
 * A register is the 16-bit value (first byte << 8) | second byte. A spec names where one point's
 * value starts in the register block, its type, its byte/word order, and value = raw*scale+offset.
 * Order codes: ABCD 0 (words high-first), CDAB 1 (words low-first), BADC 2 (bytes swapped in each
 * word), DCBA 3 (both); one-register types only honour the byte swap. A BIT point is bit `bit`
 * (0..15) of its register after the byte swap. A result that is not finite is written as NaN with
 * quality 2 (BAD); every other result has quality 0 (GOOD). Its layout is asserted against a numpy
 * dtype at import (gateway/estimate/decode.py). */
#define GG_DT_U16 0
#define GG_DT_I16 1
#define GG_DT_U32 2
#define GG_DT_I32 3
#define GG_DT_U64 4
#define GG_DT_I64 5
#define GG_DT_F32 6
#define GG_DT_F64 7
#define GG_DT_BIT 8
#define GG_DT_BOOL 9     /* a coil or discrete input stored as a 0/1 register: decoded as U16 */

typedef struct {
    uint32_t reg;    /* index of the point's first register in the block */
    uint8_t type;    /* GG_DT_* */
    uint8_t order;   /* 0..3, see above */
    uint8_t bit;     /* 0..15, GG_DT_BIT only */
    uint8_t pad;     /* keeps `scale` 8-aligned on every ABI; write 0 */
    double scale;
    double offset;
} gg_decode_spec_t;

/* Decodes n_points specs from regs[0..n_regs). GG_EINVAL, before anything is written, when a spec
 * reads beyond n_regs or has an unknown type, order or bit index. */
int gg_decode(const uint16_t *regs, size_t n_regs, const gg_decode_spec_t *specs, size_t n_points, double *out, uint8_t *quality);

#endif
