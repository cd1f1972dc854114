"""Clear-sky irradiance: the shape of a PV day, shared by the estimator's pseudo-loads and the
grid simulator's truth (which adds clouds to it)."""

from __future__ import annotations

import math
from typing import Final

_DAY_S: Final = 86400.0


def clear_sky_ghi(t: float, latitude_deg: float, longitude_deg: float) -> float:
    """Global horizontal irradiance (W/m2) under a clear sky at epoch ``t`` (Haurwitz model)."""
    days = t / _DAY_S
    doy = math.floor(days) % 365 + 1  # good enough: the epoch day count mod 365 drifts 1/4 a year
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
