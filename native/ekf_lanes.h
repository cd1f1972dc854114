/* The cells EKF, written once for any lane count: cells.c includes this file once per width with
 * EKF_W (1, 2 or 4) and EKF_TARGET (empty, or GG_QUAD_TARGET for four lanes) defined, after
 * ekf_in_t, IN_RANGE, GATE_FAIL, DEBOUNCED and decay<W>. It defines clamp<W>, ekf_lanes<W> (the
 * filter for cells i..i + EKF_W - 1) and ekf_from<W> (it over the string from a start index).
 * Every width takes the same operations in the same order per lane, so they give the same bits
 * (C99 never contracts to FMA), and each lane gives what the numpy reference computes for its
 * cell (gateway/native/cells_ref.py) to rounding. The primitives of each width (ld, st, splat,
 * sel, min, max, zero_bytes, gather, merge_low32_) are in lanes.h. Internal to native/. */
#if !defined(EKF_W) || !defined(EKF_TARGET)
#error "define EKF_W and EKF_TARGET before including ekf_lanes.h"
#endif

#define EKF_CAT_(a, b) a##b
#define EKF_CAT(a, b) EKF_CAT_(a, b)
#define EKF_CAT3_(a, b, c) a##b##c
#define EKF_CAT3(a, b, c) EKF_CAT3_(a, b, c)
#define VD EKF_CAT3(v, EKF_W, d)
#define VI EKF_CAT3(v, EKF_W, i)
#define VS EKF_CAT3(v, EKF_W, s)      /* int32 lanes: table indices */
#define LW(name) EKF_CAT(name, EKF_W) /* the EKF_W-lane form of a primitive or of a function */
#define EKF_INLINE static inline __attribute__((always_inline)) EKF_TARGET

/* x < lo ? lo : (x > hi ? hi : x) per lane (lo < hi), in two instructions: min and max return
 * their second operand unless the first wins strictly, so a NaN x stays NaN and -0.0 stays -0.0,
 * as in the reference's clip. */
EKF_INLINE VD LW(clamp)(VD x, double lo, double hi)
{
    return LW(min)(LW(splat)(hi), LW(max)(LW(splat)(lo), x));
}

/* Predict cells i..i + EKF_W - 1 and update those whose reading is plausible and passes the gate.
 * A cell without the update gets gains and innovation 0: its state plus or minus 0 times a finite
 * number is the prediction exactly (soc and h are already inside their clamps), so no lane is
 * selected afterwards. With with_hyst == 0 the caller guarantees hyst_gamma == 0 and M == 0 on the
 * whole grid: then h does not reach the voltage, and the filter is the two-state one (SOC, v1): h
 * and its covariance entries p02, p12, p22 keep the values they have, and no term of theirs is
 * computed (about a sixth of the EKF's time). */
EKF_INLINE void LW(ekf_lanes)(const gg_cell_state_t *restrict s, const gg_cell_coef_t *restrict c,
                              size_t i, const double *restrict v, const uint8_t *restrict vq,
                              const ekf_in_t *k, const int with_hyst)
{
    const double current = k->current;
    const VD vi = LW(ld)(v + i);
    const VD zero = LW(splat)(0.0);
    const VI v_good = LW(zero_bytes)(vq + i) & ((vi - vi) == zero); /* inf - inf, NaN - NaN: NaN */
    const VI in_range = v_good & (vi >= LW(splat)(k->v_lo)) & (vi <= LW(splat)(k->v_hi));

    /* Predict. */
    const VD a = LW(ld)(c->a + i);
    const VD soc =
        LW(clamp)(LW(ld)(s->soc + i) - (current * k->dt) * LW(ld)(c->inv_q + i), 0.0, 1.0);
    const VD v1 = a * LW(ld)(s->v1 + i) + LW(ld)(c->b + i) * current;
    const VD r0 = LW(ld)(c->r0 + i);
    const VD p00 = LW(ld)(s->p00 + i) + k->qs;
    const VD p01 = a * LW(ld)(s->p01 + i);
    const VD p11 = a * a * LW(ld)(s->p11 + i) + k->qv;
    VD hs = zero;
    VD p02 = zero;
    VD p12 = zero;
    VD p22 = zero;
    if (with_hyst) {
        const VD d = k->decay ? LW(decay)(LW(ld)(c->g + i) * k->abs_i) : LW(splat)(1.0);
        hs = LW(clamp)(d * LW(ld)(s->h + i) - (1.0 - d) * k->sgn_i, -1.0, 1.0);
        p02 = d * LW(ld)(s->p02 + i);
        p12 = a * d * LW(ld)(s->p12 + i);
        p22 = d * d * LW(ld)(s->p22 + i) + k->qh;
    }

    /* The measurement: OCV (and M) on the segment of the predicted SOC, whose index is floor(x)
     * clamped to 0..m-2 (NaN to 0), computed by truncation of x clamped to [0, m - 2]. The slopes
     * of the segment are the derivatives; outside 0..1 the end segments extrapolate. */
    const double span = (double)(k->m - 1);
    const VD x = soc * span;
    const VS seg = __builtin_convertvector(LW(min)(LW(max)(x, zero), LW(splat)(span - 1.0)), VS);
    const VD f = x - __builtin_convertvector(seg, VD);
    const VD o0 = LW(gather)(k->ocv, seg);
    const VD d = LW(gather)(k->ocv + 1, seg) - o0;
    const VD ocv_now = o0 + f * d;
    VD h0;
    VD hm = zero;
    VD innov;
    if (with_hyst) {
        const VD m0 = LW(gather)(k->hyst, seg);
        const VD dm = LW(gather)(k->hyst + 1, seg) - m0;
        hm = m0 + f * dm;               /* d v / d h; d v / d v1 = -1 */
        h0 = d * span + dm * span * hs; /* d v / d soc */
        innov = vi - (ocv_now + hm * hs - v1 - r0 * current);
    } else {
        h0 = d * span;
        innov = vi - (ocv_now - v1 - r0 * current);
    }
    const VD abs_innov = (VD)((VI)innov & ~(VI)LW(splat)(-0.0));
    const VI gate_fail = v_good & ~(abs_innov <= LW(splat)(k->jump_v));
    const VI used = in_range & ~gate_fail;
    LW(st)(s->ocv + i, ocv_now);
    LW(st)(s->innov + i, LW(sel)(v_good, innov, LW(splat)(NAN)));
    /* ekf_bits for every lane at once (masks are all ones or all zeros). */
    const VI bits = (~used & GG_CELL_PREDICT_ONLY) | (~v_good & GG_CELL_V_BAD)
                    | (in_range & IN_RANGE) | (gate_fail & GATE_FAIL);
    LW(merge_low32_)(s->flags + i, bits, DEBOUNCED);

    /* Update, with gains masked to 0 where it does not run. */
    VD ph0, ph1, ph2, inv_s;
    if (with_hyst) {
        ph0 = p00 * h0 - p01 + p02 * hm;
        ph1 = p01 * h0 - p11 + p12 * hm;
        ph2 = p02 * h0 - p12 + p22 * hm;
        inv_s = 1.0 / (h0 * ph0 - ph1 + hm * ph2 + k->r_v);
    } else {
        ph0 = p00 * h0 - p01;
        ph1 = p01 * h0 - p11;
        ph2 = zero; /* h is not tracked */
        inv_s = 1.0 / (h0 * ph0 - ph1 + k->r_v);
    }
    const VD innov_u = (VD)(used & (VI)innov);
    const VD g0 = (VD)(used & (VI)(ph0 * inv_s));
    const VD g1 = (VD)(used & (VI)(ph1 * inv_s));
    LW(st)(s->soc + i, LW(clamp)(soc + g0 * innov_u, 0.0, 1.0));
    LW(st)(s->v1 + i, v1 + g1 * innov_u);
    LW(st)(s->p00 + i, p00 - g0 * ph0);
    LW(st)(s->p01 + i, p01 - g0 * ph1);
    LW(st)(s->p11 + i, p11 - g1 * ph1);
    if (with_hyst) {
        const VD g2 = (VD)(used & (VI)(ph2 * inv_s));
        LW(st)(s->h + i, LW(clamp)(hs + g2 * innov_u, -1.0, 1.0));
        LW(st)(s->p02 + i, p02 - g0 * ph2);
        LW(st)(s->p12 + i, p12 - g1 * ph2);
        LW(st)(s->p22 + i, p22 - g2 * ph2);
    }
}

/* The filter over cells i.. in steps of EKF_W while a whole step fits in n; returns where it
 * stopped (the remainder is for a narrower width). */
EKF_INLINE size_t LW(ekf_from)(const gg_cell_state_t *restrict st,
                               const gg_cell_coef_t *restrict coef, size_t i, size_t n,
                               const double *restrict v, const uint8_t *restrict vq,
                               const ekf_in_t *k, const int with_hyst)
{
    /* The loop reads the array pointers and settings from copies: the state's stores (memcpy,
     * which may alias anything) would otherwise make it reload every pointer from *st, *coef and
     * *k each step. The copies live in registers or in the frame, where no store reaches. */
    const gg_cell_state_t s = *st;
    const gg_cell_coef_t c = *coef;
    const ekf_in_t in = *k;
    for (; i + EKF_W <= n; i += EKF_W) {
        LW(ekf_lanes)(&s, &c, i, v, vq, &in, with_hyst);
    }
    return i;
}

#undef EKF_INLINE
#undef LW
#undef VS
#undef VI
#undef VD
#undef EKF_CAT3
#undef EKF_CAT3_
#undef EKF_CAT
#undef EKF_CAT_
#undef EKF_TARGET
#undef EKF_W
