/* Generated from native/gridgate.h by the build: edit the header, not this file. */
#define GG_DT_U16 0
#define GG_DT_I16 1
#define GG_DT_U32 2
#define GG_DT_I32 3
#define GG_DT_U64 4
#define GG_DT_I64 5
#define GG_DT_F32 6
#define GG_DT_F64 7
#define GG_DT_BIT 8
#define GG_DT_BOOL 9
typedef struct {
    uint32_t reg;
    uint8_t type;
    uint8_t order;
    uint8_t bit;
    uint8_t pad;
    double scale;
    double offset;
} gg_decode_spec_t;
int gg_decode(const uint16_t *regs, size_t n_regs, const gg_decode_spec_t *specs, size_t n_points,
              double *out, uint8_t *quality);
