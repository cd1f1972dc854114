"""The simulator's truth model of N series cells: OCV-SOC table, R0 + two RC pairs, hysteresis.

Vectorised over all cells so a 1,400-cell rack steps faster than real time by orders of
magnitude (hours of trace in seconds). The tables and parameters here are the *truth*, kept
apart from the estimator's own tables on purpose: an estimator tested against the very table it
uses would look better than it is on field data.

Sign convention: current positive while discharging (the replay CSV's convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class Chemistry(StrEnum):
    LFP = "lfp"
    NMC = "nmc"


SOC_GRID = np.array(
    [0.0, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 0.98, 1.0]
)
# Open-circuit voltage at 25 °C, mean of the charge and discharge branches (V).
# LFP: the long plateau around 3.3 V is what makes its SOC hard to observe.
_OCV = {
    Chemistry.LFP: np.array(
        [2.50, 2.90, 3.10, 3.19, 3.22, 3.245, 3.27, 3.285, 3.295, 3.30, 3.31,
         3.325, 3.34, 3.35, 3.40, 3.55]
    ),
    Chemistry.NMC: np.array(
        [3.00, 3.30, 3.45, 3.53, 3.58, 3.62, 3.66, 3.70, 3.75, 3.82, 3.90,
         3.98, 4.06, 4.10, 4.15, 4.20]
    ),
}  # fmt: skip
# Half-width of the hysteresis band (V) versus SOC: ~15 mV on the LFP plateau, none for NMC.
_HYST = {
    Chemistry.LFP: np.array(
        [0.0, 0.005, 0.010, 0.014, 0.015, 0.015, 0.015, 0.015, 0.015, 0.015, 0.015,
         0.014, 0.012, 0.010, 0.006, 0.0]
    ),
    Chemistry.NMC: np.zeros(SOC_GRID.size),
}  # fmt: skip


def ocv(chemistry: Chemistry, soc: FloatArray, hysteresis: FloatArray | None = None) -> FloatArray:
    """Open-circuit voltage; ``hysteresis`` in [-1, 1] (-1 after discharge, +1 after charge)."""
    v: FloatArray = np.interp(soc, SOC_GRID, _OCV[chemistry])
    if hysteresis is not None:
        v = v + np.interp(soc, SOC_GRID, _HYST[chemistry]) * hysteresis
    return v


def maker_curve(chemistry: Chemistry, points: int = 101) -> tuple[FloatArray, FloatArray]:
    """(soc, volts) of this cell's mean-branch OCV sampled every 1 % of SOC: what the cell maker's
    low-rate OCV test gives a deployment for ``[bms.cells] ocv_soc/ocv_v``."""
    soc = np.linspace(0.0, 1.0, points)
    return soc, ocv(chemistry, soc)


@dataclass(frozen=True)
class CellParams:
    """Nominal parameters of one chemistry's cell; the spread is applied per cell on top."""

    capacity_ah: float
    r0: float  # ohmic resistance (ohm)
    r1: float  # fast RC pair: charge transfer
    tau1: float  # s
    r2: float  # slow RC pair: diffusion
    tau2: float  # s
    hyst_gamma: float  # hysteresis rate (per unit of SOC moved, Plett's gamma)
    self_discharge_per_day: float  # fraction of capacity
    thermal_mass: float  # J/K
    thermal_tau: float  # s, to ambient

    @classmethod
    def nominal(cls, chemistry: Chemistry) -> CellParams:
        if chemistry is Chemistry.LFP:  # a 280 Ah prismatic storage cell
            return cls(280.0, 0.25e-3, 0.15e-3, 10.0, 0.20e-3, 400.0, 40.0, 0.001, 12000.0, 7200.0)
        return cls(94.0, 0.80e-3, 0.40e-3, 8.0, 0.50e-3, 300.0, 0.0, 0.0015, 4000.0, 5400.0)


@dataclass(frozen=True)
class Spread:
    """Cell-to-cell manufacturing spread (1 sigma, relative) and initial SOC spread (absolute)."""

    capacity: float = 0.015
    resistance: float = 0.07
    soc: float = 0.025
    self_discharge: float = 0.3


class Cells:
    """State and per-cell parameters of N series cells; :meth:`step` advances them exactly.

    Exact zero-order-hold discretisation of the RC pairs and the hysteresis, so the step size is
    free (a 1 s step over hours is as exact as 10 ms steps for a piecewise-constant current).
    """

    def __init__(
        self,
        n: int,
        chemistry: Chemistry,
        *,
        soc0: float,
        rng: np.random.Generator,
        params: CellParams | None = None,
        spread: Spread | None = None,
        ambient_c: float = 25.0,
    ) -> None:
        p = params or CellParams.nominal(chemistry)
        s = spread or Spread()
        self.n = n
        self.chemistry = chemistry
        self.params = p
        self.ambient_c = ambient_c

        def spread_of(rel: float) -> FloatArray:
            return np.clip(1.0 + rel * rng.standard_normal(n), 0.5, 1.5)

        self.capacity_as: FloatArray = p.capacity_ah * 3600.0 * spread_of(s.capacity)
        r_spread = spread_of(s.resistance)
        self.r0: FloatArray = p.r0 * r_spread
        self.r1: FloatArray = p.r1 * r_spread
        self.r2: FloatArray = p.r2 * r_spread
        self.tau1 = p.tau1
        self.tau2 = p.tau2
        leak_a = p.self_discharge_per_day * p.capacity_ah / 24.0
        self.self_discharge_a: FloatArray = leak_a * spread_of(s.self_discharge)
        self.soc: FloatArray = np.clip(soc0 + s.soc * rng.standard_normal(n), 0.0, 1.0)
        self.v1: FloatArray = np.zeros(n)
        self.v2: FloatArray = np.zeros(n)
        self.h: FloatArray = np.zeros(n)
        self.temp_c: FloatArray = np.full(n, ambient_c)
        self.current: FloatArray = np.zeros(n)  # last applied cell current (A)

    def ocv(self) -> FloatArray:
        return ocv(self.chemistry, self.soc, self.h)

    def terminal(self) -> FloatArray:
        """Terminal voltage at the last applied current (what an ideal AFE would read)."""
        v: FloatArray = self.ocv() - self.v1 - self.v2 - self.current * self.r0
        return v

    def step(self, dt: float, current: FloatArray | float) -> None:
        """Advance by ``dt`` seconds with ``current`` (A, + discharge) through each cell.

        Self-discharge drains SOC internally and does not pass the terminals.
        """
        if dt <= 0:
            return
        i = np.broadcast_to(np.asarray(current, dtype=np.float64), (self.n,))
        a1 = np.exp(-dt / self.tau1)
        a2 = np.exp(-dt / self.tau2)
        self.v1 = a1 * self.v1 + self.r1 * (1.0 - a1) * i
        self.v2 = a2 * self.v2 + self.r2 * (1.0 - a2) * i
        moved = i * dt / self.capacity_as
        if self.params.hyst_gamma:
            decay = np.exp(-np.abs(moved) * self.params.hyst_gamma)
            self.h = decay * self.h - (1.0 - decay) * np.sign(i)
        self.soc = np.clip(self.soc - moved - self.self_discharge_a * dt / self.capacity_as, 0, 1)
        heat = i * i * (self.r0 + self.r1 + self.r2)
        p = self.params
        t_eq = self.ambient_c + heat * p.thermal_tau / p.thermal_mass
        self.temp_c = t_eq + (self.temp_c - t_eq) * np.exp(-dt / p.thermal_tau)
        self.current = i.copy()
