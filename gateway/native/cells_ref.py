"""Plain numpy reference of the cells kernel (the cross-check of native/cells.c and balance.c).

Written from the definitions in native/gridgate.h, vectorised over cells: masks and ``np.where``
instead of branches, ``np.median`` for the robust statistics, ``argsort`` per board for the bleed
selection, ``logical_or.reduceat`` for the board interlocks. Same arithmetic order as the kernel,
so results agree to rounding. Tests and benchmarks only; never on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gateway.core.model import FloatArray, QualityArray
from gateway.native.cells_config import CellsConfig
from gateway.native.cells_flags import FAULTS, BalanceMode, BoardInterlock, CellFlag
from gateway.native.cells_types import SUMMARY_DTYPE
from gateway.native.ocv import lookup

U32Array = npt.NDArray[np.uint32]

_MAD_TO_SIGMA: Final = 1.4826
# Every fault but STALE is debounced: a silent board is stale at once.
_DEBOUNCED: Final = int(FAULTS & ~CellFlag.STALE)
# Debounce counter slot of each debounced flag (the kernel's count[] layout).
_SLOT: Final = {
    CellFlag.OV: 0,
    CellFlag.UV: 1,
    CellFlag.OT: 2,
    CellFlag.UT: 3,
    CellFlag.DEVIATION: 4,
    CellFlag.IMPLAUSIBLE: 5,
}


@dataclass(frozen=True, eq=False)
class RefStep:
    """Everything one cycle produces; ``state`` is a new array, the input is not changed."""

    state: npt.NDArray[np.void]
    excess_ah: FloatArray
    bleed_s: FloatArray
    board_mask: U32Array
    board_interlock: U32Array
    summary: npt.NDArray[np.void]
    n_faulted: int


def _clamp01(x: FloatArray) -> FloatArray:
    out: FloatArray = np.where(x < 0.0, 0.0, np.where(x > 1.0, 1.0, x))
    return out


def _clamp11(x: FloatArray) -> FloatArray:
    out: FloatArray = np.where(x < -1.0, -1.0, np.where(x > 1.0, 1.0, x))
    return out


def _debounce(
    flags: U32Array,
    count: npt.NDArray[np.uint8],
    bit: CellFlag,
    usable: npt.NDArray[np.bool_],
    set_: npt.NDArray[np.bool_],
    clear: npt.NDArray[np.bool_],
    cfg: CellsConfig,
) -> U32Array:
    """One debounce step of ``bit`` for every cell; updates ``count`` in place."""
    active = (flags & np.uint32(bit)) != 0
    run = usable & np.where(active, clear, set_)
    counted = np.where(run, count.astype(np.int64) + 1, 0)
    fire = run & (counted >= np.where(active, cfg.debounce_clear, cfg.debounce_set))
    count[:] = np.where(fire, 0, counted).astype(np.uint8)
    out: U32Array = np.where(fire, flags ^ np.uint32(bit), flags).astype(np.uint32)
    return out


def _first_extreme(x: FloatArray, idx: npt.NDArray[np.intp]) -> tuple[float, float, int, int]:
    if len(idx) == 0:
        return np.nan, np.nan, -1, -1
    vals = x[idx]
    lo, hi = int(np.argmin(vals)), int(np.argmax(vals))
    return float(vals[lo]), float(vals[hi]), int(idx[lo]), int(idx[hi])


def step(
    state: npt.NDArray[np.void],
    params: npt.NDArray[np.void],
    ocv: FloatArray,
    cfg: CellsConfig,
    dt: float,
    current: float,
    v: FloatArray,
    vq: QualityArray,
    t: FloatArray,
    tq: QualityArray,
    hyst: FloatArray | None = None,
) -> RefStep:
    """One cycle (EKF, flags, statistics, balancing plan) for every cell.

    ``hyst`` is the hysteresis half gap on the OCV grid (None: no hysteresis).
    """
    s = state.copy()
    hyst_table = np.zeros(len(ocv)) if hyst is None else np.asarray(hyst, dtype=np.float64)
    count = s["count"].copy()
    flags = (s["flags"] & np.uint32(_DEBOUNCED)) | np.uint32(CellFlag.PREDICT_ONLY)
    v = np.asarray(v, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    v_good = (np.asarray(vq) == 0) & np.isfinite(v)
    in_range = v_good & (v >= cfg.v_lo) & (v <= cfg.v_hi)

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if np.isfinite(current):
            flags, gate_fail = _ekf_update(
                s, params, ocv, hyst_table, cfg, dt, current, v, v_good, in_range, flags
            )
        else:
            gate_fail = np.zeros(len(s), dtype=bool)
            flags = _ekf_predict_only(s, ocv, hyst_table, cfg, dt, flags)
        s["age_s"] = np.where(in_range, 0.0, s["age_s"] + dt)
        s["v_last"] = np.where(in_range, v, s["v_last"])
        flags = flags.astype(np.uint32)
        t_good = (np.asarray(tq) == 0) & np.isfinite(t)
        flags = _threshold_flags(s, count, flags, cfg, v, v_good, in_range, gate_fail, t, t_good)
        plaus = np.flatnonzero(in_range)
        med, sigma = _robust_spread(v, plaus, cfg)
        d = np.abs(v - med)
        flags = _debounce(
            flags,
            count[:, _SLOT[CellFlag.DEVIATION]],
            CellFlag.DEVIATION,
            in_range & (len(plaus) >= 3),
            d > cfg.dev_k_set * sigma,
            d < cfg.dev_k_clear * sigma,
            cfg,
        )
    s["count"] = count
    s["flags"] = flags
    summary = _summarise(s, flags, v, plaus, med, sigma, t, t_good)
    excess, bleed_s, board_mask, board_il = _balance(s, params, cfg, t, tq, summary)
    return RefStep(s, excess, bleed_s, board_mask, board_il, summary, int(summary[0]["n_faulted"]))


def _hysteresis_on(cfg: CellsConfig, hyst_table: FloatArray) -> bool:
    # Without hysteresis (no decay, M = 0 everywhere) h cannot reach the voltage: the filter is
    # the two-state one, and h with its covariance entries p02, p12, p22 keep their values.
    return cfg.hyst_gamma != 0.0 or bool(np.any(hyst_table != 0.0))


def _ekf_update(
    s: npt.NDArray[np.void],
    params: npt.NDArray[np.void],
    ocv: FloatArray,
    hyst_table: FloatArray,
    cfg: CellsConfig,
    dt: float,
    current: float,
    v: FloatArray,
    v_good: npt.NDArray[np.bool_],
    in_range: npt.NDArray[np.bool_],
    flags: U32Array,
) -> tuple[U32Array, npt.NDArray[np.bool_]]:
    """Predict with a known current and correct with each usable voltage; updates ``s``.

    Returns the flags (PREDICT_ONLY cleared where the voltage was used) and the cells whose
    innovation failed the jump gate.
    """
    n = len(s)
    a = np.exp(-dt / params["tau_s"])
    b = params["r1"] * (1.0 - a)
    inv_q = 1.0 / (3600.0 * params["capacity_ah"])
    g = cfg.hyst_gamma * dt * inv_q
    d = np.exp(-g * abs(current)) if cfg.hyst_gamma > 0.0 else np.ones(n)
    soc = _clamp01(s["soc"] - (current * dt) * inv_q)
    v1 = a * s["v1"] + b * current
    hs = _clamp11(d * s["h"] - (1.0 - d) * float(np.sign(current)))
    p00 = s["p00"] + cfg.q_soc * dt
    p01 = a * s["p01"]
    p02 = d * s["p02"]
    p11 = a * a * s["p11"] + cfg.q_v1 * dt
    p12 = a * d * s["p12"]
    p22 = d * d * s["p22"] + cfg.q_h * dt
    ocv_now, slope = lookup(ocv, soc)
    m, m_slope = lookup(hyst_table, soc)
    h0 = slope + m_slope * hs
    innov = v - (ocv_now + m * hs - v1 - params["r0"] * current)
    gate_fail = v_good & ~(np.abs(innov) <= cfg.jump_v)
    used = in_range & ~gate_fail
    ph0 = p00 * h0 - p01 + p02 * m
    ph1 = p01 * h0 - p11 + p12 * m
    ph2 = p02 * h0 - p12 + p22 * m
    inv_s = 1.0 / (h0 * ph0 - ph1 + m * ph2 + cfg.r_v)
    k0 = ph0 * inv_s
    k1 = ph1 * inv_s
    k2 = ph2 * inv_s
    s["soc"] = np.where(used, _clamp01(soc + k0 * innov), soc)
    s["v1"] = np.where(used, v1 + k1 * innov, v1)
    s["p00"] = np.where(used, p00 - k0 * ph0, p00)
    s["p01"] = np.where(used, p01 - k0 * ph1, p01)
    s["p11"] = np.where(used, p11 - k1 * ph1, p11)
    if _hysteresis_on(cfg, hyst_table):
        s["h"] = np.where(used, _clamp11(hs + k2 * innov), hs)
        s["p02"] = np.where(used, p02 - k0 * ph2, p02)
        s["p12"] = np.where(used, p12 - k1 * ph2, p12)
        s["p22"] = np.where(used, p22 - k2 * ph2, p22)
    s["ocv"] = ocv_now
    s["innov"] = np.where(v_good, innov, np.nan)
    out: U32Array = np.where(used, flags & ~np.uint32(CellFlag.PREDICT_ONLY), flags)
    return out, gate_fail


def _ekf_predict_only(
    s: npt.NDArray[np.void],
    ocv: FloatArray,
    hyst_table: FloatArray,
    cfg: CellsConfig,
    dt: float,
    flags: U32Array,
) -> U32Array:
    """Without a current only the covariance grows; updates ``s``, flags NO_CURRENT."""
    s["p00"] = s["p00"] + cfg.q_soc * dt
    s["p11"] = s["p11"] + cfg.q_v1 * dt
    if _hysteresis_on(cfg, hyst_table):
        s["p22"] = s["p22"] + cfg.q_h * dt
    s["ocv"] = lookup(ocv, s["soc"])[0]
    s["innov"] = np.nan
    out: U32Array = flags | np.uint32(CellFlag.NO_CURRENT)
    return out


def _threshold_flags(
    s: npt.NDArray[np.void],
    count: npt.NDArray[np.uint8],
    flags: U32Array,
    cfg: CellsConfig,
    v: FloatArray,
    v_good: npt.NDArray[np.bool_],
    in_range: npt.NDArray[np.bool_],
    gate_fail: npt.NDArray[np.bool_],
    t: FloatArray,
    t_good: npt.NDArray[np.bool_],
) -> U32Array:
    """The debounced limit and plausibility flags, then the instant quality and stale bits."""
    bad_reading = ~in_range | gate_fail
    for bit, usable, set_, clear in (
        (CellFlag.OV, in_range, v > cfg.ov_set, v < cfg.ov_clear),
        (CellFlag.UV, in_range, v < cfg.uv_set, v > cfg.uv_clear),
        (CellFlag.IMPLAUSIBLE, v_good, bad_reading, ~bad_reading),
        (CellFlag.OT, t_good, t > cfg.ot_set, t < cfg.ot_clear),
        (CellFlag.UT, t_good, t < cfg.ut_set, t > cfg.ut_clear),
    ):
        flags = _debounce(flags, count[:, _SLOT[bit]], bit, usable, set_, clear, cfg)
    flags |= np.where(t_good, 0, CellFlag.T_BAD).astype(np.uint32)
    flags |= np.where(v_good, 0, CellFlag.V_BAD).astype(np.uint32)
    flags |= np.where(s["age_s"] > cfg.stale_s, CellFlag.STALE, 0).astype(np.uint32)
    return flags


def _robust_spread(
    v: FloatArray, plaus: npt.NDArray[np.intp], cfg: CellsConfig
) -> tuple[float, float]:
    """Median and MAD-based sigma (floored) of the plausible voltages; NaN when there are none."""
    med = sigma = np.nan
    if len(plaus) > 0:
        med = float(np.median(v[plaus]))
        mad = float(np.median(np.abs(v[plaus] - med)))
        sigma = max(_MAD_TO_SIGMA * mad, cfg.dev_sigma_min)
    return med, sigma


def _summarise(
    s: npt.NDArray[np.void],
    flags: U32Array,
    v: FloatArray,
    plaus: npt.NDArray[np.intp],
    med: float,
    sigma: float,
    t: FloatArray,
    t_good: npt.NDArray[np.bool_],
) -> npt.NDArray[np.void]:
    """The string statistics before balancing (_balance adds the targets and n_bleeding)."""
    faulted = (flags & np.uint32(FAULTS)) != 0
    summary = np.zeros(1, dtype=SUMMARY_DTYPE)
    sm = summary[0]
    all_idx = np.arange(len(s))
    sm["soc_min"], sm["soc_max"], sm["soc_min_idx"], sm["soc_max_idx"] = _first_extreme(
        s["soc"], all_idx
    )
    sm["soc_mean"] = float(np.mean(s["soc"]))
    sm["v_min"], sm["v_max"], sm["v_min_idx"], sm["v_max_idx"] = _first_extreme(v, plaus)
    sm["v_mean"] = float(np.mean(v[plaus])) if len(plaus) else np.nan
    sm["v_spread"] = sm["v_max"] - sm["v_min"]
    sm["v_median"] = med
    sm["v_sigma"] = sigma
    sm["t_min"], sm["t_max"], sm["t_min_idx"], sm["t_max_idx"] = _first_extreme(
        t, np.flatnonzero(t_good)
    )
    sm["n_plausible"] = len(plaus)
    sm["n_predict_only"] = int(np.count_nonzero(flags & np.uint32(CellFlag.PREDICT_ONLY)))
    sm["n_faulted"] = int(np.count_nonzero(faulted))
    return summary


def _balance(
    s: npt.NDArray[np.void],
    params: npt.NDArray[np.void],
    cfg: CellsConfig,
    t: FloatArray,
    tq: QualityArray,
    summary: npt.NDArray[np.void],
) -> tuple[FloatArray, FloatArray, U32Array, U32Array]:
    """The balancing plan on the updated states ``s`` (flags get their BLEED bit here)."""
    n = len(s)
    cpb = cfg.cells_per_board
    n_boards = -(-n // cpb)
    mode = BalanceMode(cfg.bal_mode)
    by_voltage = mode is BalanceMode.VOLTAGE
    flags = s["flags"] & ~np.uint32(CellFlag.BLEED)
    faulted = (flags & np.uint32(FAULTS)) != 0
    with np.errstate(invalid="ignore"):
        good = ~faulted & np.isfinite(s["v_last"]) & (s["age_s"] <= cfg.bal_max_age_s)
    key = s["v_last"] if by_voltage else s["soc"]
    target = ref_soc = np.nan
    if mode is not BalanceMode.OFF and np.any(good):
        low = int(np.argmin(np.where(good, key, np.inf)))
        target, ref_soc = float(key[low]), float(s["soc"][low])
    sm = summary[0]
    sm["target_soc"] = target if mode is BalanceMode.SOC else np.nan
    sm["target_v"] = target if by_voltage else np.nan

    with np.errstate(invalid="ignore", divide="ignore"):
        over = s["soc"] - ref_soc
        excess = np.where(over > 0.0, over * params["capacity_ah"], 0.0)
        bleed_s = np.where(excess > 0.0, excess * (3600.0 * cfg.bal_bleed_ohm) / s["v_last"], 0.0)
        window = cfg.bal_v_window if by_voltage else cfg.bal_soc_window
        candidate = key - target > window
        hot = ~((np.asarray(tq) == 0) & (t <= cfg.bal_max_temp))
        low_v = ~(s["v_last"] >= cfg.bal_min_v)
        stale = ~(s["age_s"] <= cfg.bal_max_age_s)
    starts = np.arange(0, n, cpb)
    il = np.zeros(n_boards, dtype=np.uint32)
    for bit, cond in (
        (BoardInterlock.LOW_V, low_v),
        (BoardInterlock.HOT, hot),
        (BoardInterlock.STALE, stale),
        (BoardInterlock.FAULT, faulted),
    ):
        il |= np.where(np.logical_or.reduceat(cond, starts), bit, 0).astype(np.uint32)
    if mode is BalanceMode.OFF:
        il |= np.uint32(BoardInterlock.OFF)
    elif np.isnan(target):
        il |= np.uint32(BoardInterlock.NO_TARGET)

    flat = np.full(n_boards * cpb, -np.inf)
    flat[:n] = np.where(candidate, key - target if by_voltage else excess, -np.inf)
    score = flat.reshape(n_boards, cpb)
    order = np.argsort(-score, axis=1, kind="stable")  # most excess first, ties to lower cell
    ranked = np.take_along_axis(score, order, axis=1)
    take = (np.arange(cpb) < cfg.bal_max_per_board) & (ranked > -np.inf) & (il == 0)[:, None]
    selected = np.zeros((n_boards, cpb), dtype=bool)
    np.put_along_axis(selected, order, take, axis=1)
    weights = (np.uint64(1) << np.arange(cpb, dtype=np.uint64)).astype(np.uint64)
    board_mask = (selected.astype(np.uint64) * weights).sum(axis=1).astype(np.uint32)
    bleeding = selected.reshape(-1)[:n]
    s["flags"] = flags | np.where(bleeding, CellFlag.BLEED, 0).astype(np.uint32)
    sm["n_bleeding"] = int(np.count_nonzero(bleeding))
    return excess, bleed_s, board_mask, il


__all__ = ["RefStep", "step"]
