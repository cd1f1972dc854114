"""Pseudo-loads: the expected P and Q of every connection point that has no real-time meter.

Consumption comes from the connection's standard load profile scaled by its annual energy; PV, where
configured, from a clear-sky irradiance shape (Haurwitz) times the kWp, a performance ratio and a
clear-sky index (the cloudiness estimate: 1 = clear, 0.5 = half the clear-sky yield). Neither is
right for one house at one minute; the estimator corrects their sum with the meters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from gateway.grid.estimation_config import Connection, EstimationConfig
from gateway.grid.slp import profile
from gateway.grid.solar import clear_sky_ghi
from gateway.native.feeder_model import FloatArray

_LOAD_TAN_PHI: Final = math.tan(math.acos(0.95))  # households, inductive; PV at unity PF


@dataclass(frozen=True, eq=False)
class PseudoLoads:
    """Per connection (config order): gross consumption and PV, W; reactive power, var."""

    load_w: FloatArray
    load_var: FloatArray
    pv_w: FloatArray

    @property
    def net_w(self) -> FloatArray:
        out: FloatArray = self.load_w - self.pv_w
        return out


class PseudoLoadModel:
    def __init__(self, cfg: EstimationConfig, connections: tuple[Connection, ...]) -> None:
        self._cfg = cfg
        self._conns = connections
        self._profiles = [profile(c.profile) for c in connections]
        self._kwp = np.array([c.pv_kwp for c in connections])

    def at(self, t: float) -> PseudoLoads:
        cfg = self._cfg
        local = t + cfg.utc_offset_h * 3600.0
        load = np.array(
            [
                p.power_w(c.annual_kwh, local)
                for p, c in zip(self._profiles, self._conns, strict=True)
            ]
        )
        ghi = clear_sky_ghi(t, cfg.latitude_deg, cfg.longitude_deg)
        pv = self._kwp * ghi * cfg.pv_performance_ratio * cfg.clear_sky_index  # kWp * W/m2 = W
        return PseudoLoads(load, load * _LOAD_TAN_PHI, pv)
