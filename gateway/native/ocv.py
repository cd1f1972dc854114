"""Open-circuit voltage versus state of charge for the cell estimator (LFP and NMC).

The curves are typical published shapes, not one vendor's datasheet: a field deployment should
replace them with the cell maker's low-rate OCV test. Breakpoints are resampled once, by a monotone
cubic (Fritsch-Carlson PCHIP), onto a uniform SOC grid; the kernel (native/cells.c) and its numpy
reference then interpolate that grid linearly, so both use exactly the same table and the
derivative is the slope of the segment.

Sources the breakpoints follow (values rounded, read off the published curves):

- NMC: the C/20 OCV of NMC/graphite cells as in G. Plett, *Battery Management Systems, Vol. I*
  (Artech House, 2015), ch. 2, and the CALCE low-current OCV tests of the Samsung INR18650-20R:
  3.0 V empty, a knee below 10 %, then a near-linear rise to about 4.19 V full.
- LFP: the mean of the charge and discharge branches of LFP/graphite cells as in M. A. Roscher,
  D. U. Sauer, "Dynamic electric behavior and open-circuit-voltage modeling in LiFePO4-based
  lithium ion secondary batteries", J. Power Sources 196 (2011) 331-336, and the A123
  ANR26650M1 curves: a flat plateau of about 3.27-3.34 V from 20 % to 90 %.

Hysteresis (LFP): the charge branch lies about 20-30 mV above the discharge branch on the
plateau (Roscher & Sauer 2011), comparable to the whole plateau's rise from 30 % to 70 %; an
estimator that ignores it is off by 10-30 % of SOC on the plateau after a charge or a discharge.
The kernel models it with Plett's one-state hysteresis (Battery Management Systems Vol. I,
ch. 2.7): v = OCV(soc) + M(soc) h, h moving towards -1 while discharging and +1 while charging at
the rate ``hyst_gamma`` per unit of SOC moved. :func:`hysteresis_table` is M(soc), half the gap
between the branches: a typical published shape, about 15 mV on the plateau, closing at the ends
where the curve is steep. NMC's hysteresis is a few mV and is ignored (M = 0).
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Final

import numpy as np

from gateway.core.errors import NativeError
from gateway.core.model import FloatArray


class Chemistry(StrEnum):
    LFP = "lfp"
    NMC = "nmc"


# Half the gap between the LFP charge and discharge OCV branches on the plateau (V).
LFP_HYSTERESIS_V: Final = 0.015
# How fast h moves to its branch per unit of SOC moved: 1/e of the way in about 3 % of SOC.
LFP_HYSTERESIS_GAMMA: Final = 30.0

# Default resolution of the uniform grid: 1 % SOC steps keep the linear interpolation of the
# PCHIP curve within about 1 mV of it except in the knee below 5 %.
DEFAULT_POINTS: Final = 101

_BREAKPOINTS: Final = MappingProxyType(
    {
        Chemistry.NMC: (
            (0.00, 3.000),
            (0.05, 3.360),
            (0.10, 3.470),
            (0.15, 3.540),
            (0.20, 3.580),
            (0.25, 3.610),
            (0.30, 3.645),
            (0.35, 3.675),
            (0.40, 3.705),
            (0.45, 3.735),
            (0.50, 3.765),
            (0.55, 3.800),
            (0.60, 3.840),
            (0.65, 3.885),
            (0.70, 3.930),
            (0.75, 3.970),
            (0.80, 4.010),
            (0.85, 4.050),
            (0.90, 4.090),
            (0.95, 4.135),
            (1.00, 4.190),
        ),
        Chemistry.LFP: (
            (0.00, 2.600),
            (0.02, 2.950),
            (0.05, 3.120),
            (0.10, 3.200),
            (0.15, 3.225),
            (0.20, 3.245),
            (0.30, 3.268),
            (0.40, 3.283),
            (0.50, 3.292),
            (0.60, 3.300),
            (0.70, 3.315),
            (0.80, 3.328),
            (0.90, 3.338),
            (0.95, 3.355),
            (0.98, 3.400),
            (1.00, 3.550),
        ),
    }
)


# M(soc) of LFP as a fraction of LFP_HYSTERESIS_V: the full gap on the plateau, closing where
# the branches meet at the ends (values read off the published branch pairs, rounded).
_LFP_HYSTERESIS_SHAPE: Final = (
    (0.00, 0.0),
    (0.05, 0.6),
    (0.15, 1.0),
    (0.85, 1.0),
    (0.95, 0.6),
    (1.00, 0.0),
)


def breakpoints(chemistry: Chemistry) -> tuple[FloatArray, FloatArray]:
    """The published-shape (soc, volts) breakpoints of ``chemistry``, strictly increasing."""
    pts = np.array(_BREAKPOINTS[Chemistry(chemistry)], dtype=np.float64)
    return pts[:, 0].copy(), pts[:, 1].copy()


def _pchip_slopes(x: FloatArray, y: FloatArray) -> FloatArray:
    """Fritsch-Carlson derivatives: weighted harmonic means inside, 3-point formula at the ends.

    They keep the cubic monotone wherever the data are, so the OCV never folds back.
    """
    h = np.diff(x)
    delta = np.diff(y) / h
    d = np.zeros_like(y)
    w1 = 2.0 * h[1:] + h[:-1]
    w2 = h[1:] + 2.0 * h[:-1]
    same_sign = delta[:-1] * delta[1:] > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    d[1:-1] = np.where(same_sign, inner, 0.0)

    def end(h0: float, h1: float, m0: float, m1: float) -> float:
        s = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(s) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(s) > abs(3.0 * m0):
            return float(3.0 * m0)
        return float(s)

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def pchip(x: FloatArray, y: FloatArray, at: FloatArray) -> FloatArray:
    """Monotone cubic Hermite interpolation of (x, y) evaluated at ``at`` (inside [x0, xn])."""
    d = _pchip_slopes(x, y)
    k = np.clip(np.searchsorted(x, at, side="right") - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]
    s = (at - x[k]) / h
    h00 = (1.0 + 2.0 * s) * (1.0 - s) ** 2
    h10 = s * (1.0 - s) ** 2
    h01 = s * s * (3.0 - 2.0 * s)
    h11 = s * s * (s - 1.0)
    out: FloatArray = h00 * y[k] + h10 * h * d[k] + h01 * y[k + 1] + h11 * h * d[k + 1]
    return out


def ocv_table(chemistry: Chemistry, n_points: int = DEFAULT_POINTS) -> FloatArray:
    """OCV (V) on the uniform grid ``soc = linspace(0, 1, n_points)``, the kernel's table."""
    if n_points < 2:
        raise NativeError(f"an OCV table needs at least 2 points, got {n_points}")
    soc, volts = breakpoints(chemistry)
    return pchip(soc, volts, np.linspace(0.0, 1.0, n_points))


def hysteresis_table(chemistry: Chemistry, n_points: int = DEFAULT_POINTS) -> FloatArray:
    """Half gap M (V) between the charge and discharge OCV branches on the uniform grid."""
    if n_points < 2:
        raise NativeError(f"a hysteresis table needs at least 2 points, got {n_points}")
    grid = np.linspace(0.0, 1.0, n_points)
    if Chemistry(chemistry) is not Chemistry.LFP:
        return np.zeros(n_points)
    pts = np.array(_LFP_HYSTERESIS_SHAPE, dtype=np.float64)
    out: FloatArray = LFP_HYSTERESIS_V * np.interp(grid, pts[:, 0], pts[:, 1])
    return out


def lookup(table: FloatArray, soc: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(OCV, dOCV/dSOC) by linear interpolation of a uniform table, as the kernel computes them.

    The segment index is clamped to the table, so SOC outside 0..1 extrapolates the end segments.
    """
    span = float(len(table) - 1)
    x = np.asarray(soc, dtype=np.float64) * span
    seg = np.clip(np.floor(x), 0.0, span - 1.0)
    k = seg.astype(np.intp)
    d = table[k + 1] - table[k]
    value: FloatArray = table[k] + (x - seg) * d
    slope: FloatArray = d * span
    return value, slope


__all__ = [
    "DEFAULT_POINTS",
    "LFP_HYSTERESIS_GAMMA",
    "LFP_HYSTERESIS_V",
    "Chemistry",
    "breakpoints",
    "hysteresis_table",
    "lookup",
    "ocv_table",
    "pchip",
]
