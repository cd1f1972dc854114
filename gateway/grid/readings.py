"""A located meter's frame as a :class:`MeterReading` on the feeder's phases.

The meter's L1, L2, L3 map to the feeder phases named by its ``phases`` key; a reading counts only
if it is fresh and every point used is GOOD, because a half-read meter balanced into the estimate
would be worse than none.
"""

from __future__ import annotations

import numpy as np

from gateway.core.model import Frame, Quality
from gateway.grid.config import ESTIMATE_POINTS, MeterConfig
from gateway.grid.estimator import PHASE_NAMES, MeterReading


class ReadingMap:
    def __init__(self, meter: MeterConfig) -> None:
        assert meter.location is not None  # only located meters get a map
        index = {p.name: i for i, p in enumerate(meter.plan.points)}
        self.name = meter.name
        # [quantity, meter phase] -> point index, validated to exist by the config
        n = len(meter.location.phases)
        self._idx = np.array(
            [[index[f.format(i)] for i in range(1, n + 1)] for f in ESTIMATE_POINTS], dtype=np.intp
        )
        self._phase = np.array([PHASE_NAMES.index(p) for p in meter.location.phases])

    def reading(self, frame: Frame | None, now: float, max_age: float) -> MeterReading | None:
        if frame is None or now - frame.ts > max_age:
            return None
        if not bool(np.all(frame.quality[self._idx] == Quality.GOOD)):
            return None
        out = np.full((3, 3), np.nan)
        out[:, self._phase] = frame.values[self._idx]
        return MeterReading(out[0], out[1], out[2])
