/* Modbus registers to numbers (see gridgate.h, decode). The wire order is undone with shifts on
 * integers, never by type-punning pointers, so the result does not depend on the host's
 * endianness; floats are reinterpreted with memcpy, which compilers turn into a register move. */
#include <math.h>
#include <string.h>

#include "gridgate.h"

enum { QUALITY_GOOD = 0, QUALITY_BAD = 2, N_ORDERS = 4, MAX_BIT = 15 };

static unsigned type_words(uint8_t type)
{
    switch (type) {
    case GG_DT_U16:
    case GG_DT_I16:
    case GG_DT_BIT:
    case GG_DT_BOOL:
        return 1;
    case GG_DT_U32:
    case GG_DT_I32:
    case GG_DT_F32:
        return 2;
    case GG_DT_U64:
    case GG_DT_I64:
    case GG_DT_F64:
        return 4;
    default:
        return 0; /* unknown type */
    }
}

static int spec_valid(const gg_decode_spec_t *s, size_t n_regs)
{
    unsigned words = type_words(s->type);
    if (words == 0 || s->order >= N_ORDERS || s->bit > MAX_BIT) {
        return 0;
    }
    return (size_t)s->reg < n_regs && n_regs - (size_t)s->reg >= words;
}

static uint16_t swap_bytes(uint16_t w) { return (uint16_t)((w << 8) | (w >> 8)); }

/* The value's bytes most significant first, as one unsigned integer of `words` registers. */
static uint64_t gather(const uint16_t *r, unsigned words, uint8_t order)
{
    int byte_swap = order == 2 || order == 3;
    int word_swap = order == 1 || order == 3;
    uint64_t raw = 0;
    for (unsigned k = 0; k < words; k++) {
        uint16_t w = r[word_swap ? words - 1 - k : k];
        raw = (raw << 16) | (byte_swap ? swap_bytes(w) : w);
    }
    return raw;
}

static double raw_value(const gg_decode_spec_t *s, const uint16_t *r)
{
    uint64_t raw = gather(r, type_words(s->type), s->order);
    switch (s->type) {
    case GG_DT_U16:
    case GG_DT_BOOL:
        return (double)(uint16_t)raw;
    case GG_DT_I16:
        return (double)(int16_t)(uint16_t)raw;
    case GG_DT_U32:
        return (double)(uint32_t)raw;
    case GG_DT_I32:
        return (double)(int32_t)(uint32_t)raw;
    case GG_DT_U64:
        return (double)raw;
    case GG_DT_I64:
        return (double)(int64_t)raw;
    case GG_DT_F32: {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, sizeof f);
        return (double)f;
    }
    case GG_DT_F64: {
        double d;
        memcpy(&d, &raw, sizeof d);
        return d;
    }
    default: /* GG_DT_BIT; spec_valid() refused anything else */
        return (double)((raw >> s->bit) & 1u);
    }
}

int gg_decode(const uint16_t *regs, size_t n_regs, const gg_decode_spec_t *specs, size_t n_points,
              double *out, uint8_t *quality)
{
    if (n_points == 0) {
        return GG_OK;
    }
    if (regs == NULL || specs == NULL || out == NULL || quality == NULL) {
        return GG_EINVAL;
    }
    for (size_t i = 0; i < n_points; i++) {
        if (!spec_valid(&specs[i], n_regs)) {
            return GG_EINVAL;
        }
    }
    for (size_t i = 0; i < n_points; i++) {
        const gg_decode_spec_t *s = &specs[i];
        double v = raw_value(s, regs + s->reg) * s->scale + s->offset;
        if (isfinite(v)) {
            out[i] = v;
            quality[i] = QUALITY_GOOD;
        } else {
            out[i] = NAN;
            quality[i] = QUALITY_BAD;
        }
    }
    return GG_OK;
}
