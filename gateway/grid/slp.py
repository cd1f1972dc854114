"""Standard load profiles: the expected power of a connection from its annual energy alone.

A standard load profile (SLP) is what a distribution system operator uses for a connection it does
not meter in real time: an average daily curve, normalised to a fixed annual energy and scaled by
each connection's billed annual energy. The German BDEW H0 profile is the best known; it is a
statistical average over many households, so no single house follows it.

The built-in ``household`` profile is derived the same way from data the simulator does not use:
the mean of the IEEE European LV test feeder's household profiles 56 to 100 (the test feeder's 55
loads use profiles 1 to 55), averaged to 96 quarter hours and normalised to 1,000 kWh per year
(see docs/estimation.md). It has one day type; BDEW's weekday/Saturday/Sunday and seasonal
variants and its dynamisation polynomial would slot in as further tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

QUARTERS_PER_DAY: Final = 96
REFERENCE_KWH: Final = 1000.0  # annual energy the tables are normalised to
_DAY_S: Final = 86400.0

# W at 1,000 kWh/a, quarter hours from 00:00 local time (value at the quarter's middle).
_HOUSEHOLD: Final = (
    24.2, 54.1, 61.5, 56.4, 41.9, 47.5, 41.0, 35.4, 38.0, 39.0, 37.9, 32.6,
    33.9, 36.4, 39.5, 40.8, 36.2, 36.4, 36.5, 43.5, 44.8, 35.1, 49.3, 57.0,
    50.0, 63.7, 69.2, 86.6, 70.0, 88.9, 94.4, 119.4, 173.1, 192.0, 151.6, 155.6,
    149.8, 118.0, 100.4, 82.5, 71.5, 100.0, 99.4, 103.6, 87.6, 99.5, 163.9, 178.1,
    187.2, 140.7, 169.3, 143.2, 147.6, 108.4, 117.4, 81.7, 84.2, 87.6, 99.0, 84.7,
    98.2, 98.4, 96.7, 79.4, 108.0, 124.4, 132.3, 157.7, 193.0, 190.7, 172.7, 145.4,
    136.8, 170.5, 163.2, 154.2, 226.1, 230.6, 225.2, 257.1, 227.6, 197.9, 204.8, 205.4,
    193.1, 209.2, 192.0, 170.9, 188.5, 185.5, 184.1, 141.3, 124.1, 113.2, 68.3, 73.5,
)  # fmt: skip
_FLAT: Final = (REFERENCE_KWH * 1000.0 / 8760.0,) * QUARTERS_PER_DAY


@dataclass(frozen=True)
class StandardLoadProfile:
    """One day of quarter-hour powers (W) for ``REFERENCE_KWH`` per year."""

    name: str
    quarter_w: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.quarter_w) != QUARTERS_PER_DAY:
            raise ValueError(f"profile {self.name}: needs {QUARTERS_PER_DAY} quarter hours")

    def power_w(self, annual_kwh: float, local_s: float) -> float:
        """Expected active power (W) at ``local_s`` seconds into the local day, interpolated
        linearly between quarter-hour midpoints so that the estimate has no 15-minute steps."""
        x = (local_s % _DAY_S) / 900.0 - 0.5
        k = math.floor(x)
        frac = x - k
        a = self.quarter_w[k % QUARTERS_PER_DAY]
        b = self.quarter_w[(k + 1) % QUARTERS_PER_DAY]
        return (a + frac * (b - a)) * annual_kwh / REFERENCE_KWH

    def daily_kwh(self, annual_kwh: float) -> float:
        return sum(self.quarter_w) * 0.25 / 1000.0 * annual_kwh / REFERENCE_KWH


BUILTIN: Final = {
    "household": StandardLoadProfile("household", _HOUSEHOLD),
    "flat": StandardLoadProfile("flat", _FLAT),
}


def profile(name: str) -> StandardLoadProfile:
    """A built-in profile by name; raises KeyError naming the known ones."""
    try:
        return BUILTIN[name]
    except KeyError:
        raise KeyError(f"unknown load profile {name!r} (known: {', '.join(BUILTIN)})") from None
