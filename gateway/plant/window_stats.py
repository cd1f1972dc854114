"""What one summary window of the plant saw, and its statistics.

The scoring loop adds one sample per model period; the summary reports the window's operating
state, power, efficiency and anomaly score as mean/min/max/last. NaN samples (a tag BAD, the
machine not running for efficiency) are left out of the statistics rather than poisoning them; a
window with none is ``null`` upstream.
"""

from __future__ import annotations

import math
import time

import numpy as np

from gateway.plant.anomaly import Assessment
from gateway.plant.machine_state import RUNNING, state_name


def stats(values: list[float]) -> dict[str, float] | None:
    """mean/min/max/last of the finite values, rounded for the row; None when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return {
        "mean": round(float(np.mean(finite)), 4),
        "min": round(min(finite), 4),
        "max": round(max(finite), 4),
        "last": round(finite[-1], 4),
    }


class PlantWindow:
    def __init__(self) -> None:
        self.start = time.time()
        self.power: list[float] = []
        self.efficiency: list[float] = []
        self.scores: list[float] = []
        self.states: list[float] = []
        self.samples = 0

    def add(self, state: float, power: float, efficiency: float, a: Assessment | None) -> None:
        self.samples += 1
        self.states.append(state)
        self.power.append(power)
        self.efficiency.append(efficiency)
        if a is not None:
            self.scores.append(a.score)

    def state(self) -> str:
        """The last known state of the window ("unknown" when the PLC never said)."""
        states = [s for s in self.states if math.isfinite(s)]
        return state_name(states[-1]) if states else "unknown"

    def running_fraction(self) -> float:
        """Share of the samples with a known state that were running (0 when none was known)."""
        states = [s for s in self.states if math.isfinite(s)]
        return round(states.count(RUNNING) / len(states), 3) if states else 0
