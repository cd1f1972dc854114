/* Two doubles per instruction (SSE2 on x86-64, NEON on aarch64) through GCC vector extensions,
 * with no compiler flag: the kernels of cells.c and balance.c process two cells at a time.
 * Lanes are selected with masks rather than branches, and comparisons are written so that a
 * NaN selects what the scalar code's comparison would. Each width (v1d: one lane, v2d, v4d) has
 * the same set of primitives under the same names with its width as suffix (ld2, sel4, ...), so
 * that code written once over them (ekf_lanes.h) compiles for each. Internal to native/, not in
 * the cdef. */
#ifndef GG_LANES_H
#define GG_LANES_H

#include <stdint.h>
#include <string.h>

typedef double v2d __attribute__((vector_size(16)));
typedef int64_t v2i __attribute__((vector_size(16)));

static inline v2d ld2(const double *p)
{
    v2d r;
    memcpy(&r, p, sizeof r);
    return r;
}

static inline void st2(double *p, v2d x) { memcpy(p, &x, sizeof x); }

/* m ? a : b per lane (m is all ones or all zeros). */
static inline v2d sel2(v2i m, v2d a, v2d b) { return (v2d)((m & (v2i)a) | (~m & (v2i)b)); }

/* a < b ? a : b and a > b ? a : b per lane (what minpd / maxpd compute). */
static inline v2d min2(v2d a, v2d b)
{
#if defined(__SSE2__)
    return __builtin_ia32_minpd(a, b);
#else
    return sel2(a < b, a, b);
#endif
}

static inline v2d max2(v2d a, v2d b)
{
#if defined(__SSE2__)
    return __builtin_ia32_maxpd(a, b);
#else
    return sel2(a > b, a, b);
#endif
}

/* Bit j set where lane j of the mask m is set. */
static inline uint32_t bits2(v2i m)
{
#if defined(__SSE2__)
    return (uint32_t)__builtin_ia32_movmskpd((v2d)m);
#else
    return (uint32_t)(m[0] & 1) | (uint32_t)(m[1] & 1) << 1;
#endif
}

/* The low 32 bits of both lanes as the 8 bytes of a uint32_t[2] {lane 0, lane 1}: one shuffle
 * instead of two extractions. */
static inline uint64_t pack_low32(v2i m)
{
    typedef int32_t v4i32 __attribute__((vector_size(16)));
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const v4i32 low = {0, 2, 0, 2};
#else
    const v4i32 low = {1, 3, 1, 3};
#endif
    const v4i32 packed = __builtin_shuffle((v4i32)m, low);
    uint64_t out;
    memcpy(&out, &packed, sizeof out);
    return out;
}

/* The rest of the two-lane primitives a width-generic body (cells.c's EKF) needs: a broadcast,
 * the lanes whose byte is 0, a table read at each lane's index, and the low 32 bits of each lane
 * stored into dst[0..1] over the bits of dst that keep selects (one 64-bit read and write). */
static inline v2d splat2(double x) { return (v2d){x, x}; }

static inline v2i zero_bytes2(const uint8_t *q)
{
    return (v2i){-(int64_t)(q[0] == 0), -(int64_t)(q[1] == 0)};
}

/* Table indices are int32 lanes (v2s): SSE2 converts two doubles to two int32 and back in one
 * instruction each (cvttpd2dq, cvtdq2pd), where 64-bit lanes take a scalar conversion per lane
 * and a shuffle; the indices are below the table size (n_ocv), so they fit. */
typedef int32_t v2s __attribute__((vector_size(8)));

static inline v2d gather2(const double *t, v2s k)
{
    return (v2d){t[(uint32_t)k[0]], t[(uint32_t)k[1]]};
}

static inline void merge_low32_2(uint32_t *dst, v2i m, uint32_t keep)
{
    uint64_t both;
    memcpy(&both, dst, sizeof both);
    both = (both & ((uint64_t)keep << 32 | keep)) | pack_low32(m);
    memcpy(dst, &both, sizeof both);
}

/* One lane: the same primitives on a one-element vector, so that the odd last cell of a string
 * goes through the same width-generic code as the others (min1 and max1 keep the operand rules
 * of minpd and maxpd). */
typedef double v1d __attribute__((vector_size(8)));
typedef int64_t v1i __attribute__((vector_size(8)));

static inline v1d ld1(const double *p) { return (v1d){*p}; }
static inline void st1(double *p, v1d x) { *p = x[0]; }
static inline v1d splat1(double x) { return (v1d){x}; }
static inline v1d sel1(v1i m, v1d a, v1d b) { return (v1d)((m & (v1i)a) | (~m & (v1i)b)); }
static inline v1d min1(v1d a, v1d b) { return a[0] < b[0] ? a : b; }
static inline v1d max1(v1d a, v1d b) { return a[0] > b[0] ? a : b; }
static inline v1i zero_bytes1(const uint8_t *q) { return (v1i){-(int64_t)(q[0] == 0)}; }
typedef int32_t v1s __attribute__((vector_size(4)));
static inline v1d gather1(const double *t, v1s k) { return (v1d){t[(uint32_t)k[0]]}; }

static inline void merge_low32_1(uint32_t *dst, v1i m, uint32_t keep)
{
    dst[0] = (dst[0] & keep) | (uint32_t)m[0];
}

/* GG_V3_CLONE before a function: on x86-64 it is compiled twice, for the baseline and for
 * x86-64-v3 (AVX2, FMA, POPCNT: VEX encoding, three-operand instructions), and the copy the CPU
 * can run is chosen once at load time (GCC target_clones, an ifunc). Both copies give the same
 * bits: C is compiled as ISO C99 here, which never contracts a * b + c into an FMA, and only an
 * explicit fma() call is one. Elsewhere (aarch64 has NEON as its baseline) it is empty. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define GG_V3_CLONE __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
#ifndef GG_V3_CLONE
#define GG_V3_CLONE
#endif

/* GG_QUAD: four doubles per instruction where the CPU has x86-64-v3 (AVX2), for the kernels'
 * widest loop. Unlike GG_V3_CLONE this is different code, not the same code encoded twice, so
 * its functions carry GG_QUAD_TARGET and are only called after gg_has_quad() said yes (GCC 12
 * names the level in __builtin_cpu_supports). Lowered to SSE2 the same source runs at half the
 * speed of the two-lane code, so without x86-64-v3 there is no four-lane code at all. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
#define GG_QUAD 1
#define GG_QUAD_TARGET __attribute__((target("arch=x86-64-v3")))

typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4i __attribute__((vector_size(32)));

static inline int gg_has_quad(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v3") != 0;
}

static inline __attribute__((always_inline)) GG_QUAD_TARGET v4d ld4(const double *p)
{
    v4d r;
    memcpy(&r, p, sizeof r);
    return r;
}

static inline __attribute__((always_inline)) GG_QUAD_TARGET void st4(double *p, v4d x)
{
    memcpy(p, &x, sizeof x);
}

static inline __attribute__((always_inline)) GG_QUAD_TARGET v4d splat4(double x)
{
    return (v4d){x, x, x, x};
}

/* sel2, min2 and max2 on four lanes, with the same NaN and -0.0 rules. */
static inline __attribute__((always_inline)) GG_QUAD_TARGET v4d sel4(v4i m, v4d a, v4d b)
{
    return (v4d)((m & (v4i)a) | (~m & (v4i)b));
}

static inline __attribute__((always_inline)) GG_QUAD_TARGET v4d min4(v4d a, v4d b)
{
    return sel4(a < b, a, b);
}

static inline __attribute__((always_inline)) GG_QUAD_TARGET v4d max4(v4d a, v4d b)
{
    return sel4(a > b, a, b);
}

/* pack_low32 on four lanes: their low 32 bits as a uint32_t[4]. */
static inline __attribute__((always_inline)) GG_QUAD_TARGET void pack4_low32(v4i m, uint32_t *out)
{
    typedef int32_t v8i32 __attribute__((vector_size(32)));
    const v8i32 low = {0, 2, 4, 6, 0, 2, 4, 6};
    const v8i32 packed = __builtin_shuffle((v8i32)m, low);
    memcpy(out, &packed, 4 * sizeof *out);
}

static inline __attribute__((always_inline)) GG_QUAD_TARGET v4i zero_bytes4(const uint8_t *q)
{
    return (v4i){-(int64_t)(q[0] == 0), -(int64_t)(q[1] == 0), -(int64_t)(q[2] == 0),
                 -(int64_t)(q[3] == 0)};
}

typedef int32_t v4s __attribute__((vector_size(16)));

static inline __attribute__((always_inline)) GG_QUAD_TARGET v4d gather4(const double *t, v4s k)
{
    return (v4d){t[(uint32_t)k[0]], t[(uint32_t)k[1]], t[(uint32_t)k[2]], t[(uint32_t)k[3]]};
}

static inline __attribute__((always_inline)) GG_QUAD_TARGET void merge_low32_4(uint32_t *dst, v4i m,
                                                                               uint32_t keep)
{
    uint32_t fresh[4];
    pack4_low32(m, fresh);
    for (int l = 0; l < 4; l++) {
        dst[l] = (dst[l] & keep) | fresh[l];
    }
}
#else
#define GG_QUAD 0
static inline int gg_has_quad(void) { return 0; }
#endif

#endif
