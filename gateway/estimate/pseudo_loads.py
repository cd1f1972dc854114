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

from gateway.core.config.estimation import Connection, EstimationConfig
from gateway.estimate.feeder_model import FloatArray
from gateway.estimate.slp import profile

_DAY_S: Final = 86400.0
_LOAD_TAN_PHI: Final = math.tan(math.acos(0.95))  # households, inductive; PV at unity PF


def clear_sky_ghi(t: float, latitude_deg: float, longitude_deg: float) -> float:
    """Global horizontal irradiance (W/m2) under a clear sky at epoch ``t`` (Haurwitz model)."""
    days = t / _DAY_S
    doy = math.floor(days) % 365 + 1
    utc_h = (days - math.floor(days)) * 24.0
    b = 2.0 * math.pi * (doy - 81) / 364.0
    eot_min = 9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)
    solar_h = utc_h + longitude_deg / 15.0 + eot_min / 60.0
    decl = math.radians(23.44) * math.sin(2.0 * math.pi * (284 + doy) / 365.0)
    lat = math.radians(latitude_deg)
    omega = math.radians(15.0 * (solar_h - 12.0))
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(omega)
    if cos_zenith <= 0.01:
        return 0.0
    return 1098.0 * cos_zenith * math.exp(-0.057 / cos_zenith)


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
