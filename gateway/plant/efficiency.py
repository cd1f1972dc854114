"""Electrical efficiency: power out over the fuel's heat in.

Only while running: starting and stopping burn fuel for no power, and an idle machine's ratio is
noise over nothing. A biogas CHP's fuel is a gas volume of varying methane content, so its flow
counts only in proportion to the methane share before the heating value applies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from gateway.plant.config import ProfileTags
from gateway.plant.machine_state import RUNNING


def efficiency(tags: Mapping[str, float], names: ProfileTags, fuel_lhv: float) -> float:
    """Power / (fuel flow x lower heating value), NaN when not running or not known."""
    power = tags.get(names.power, math.nan)
    fuel = tags.get(names.fuel, math.nan)
    if names.methane is not None:
        fuel *= tags.get(names.methane, math.nan) / 100.0
    fuel_kw = fuel * fuel_lhv
    if tags.get(names.state) != RUNNING or not fuel_kw > 0.0 or not math.isfinite(power):
        return math.nan
    return power / fuel_kw
