"""The data model shared by drivers, daemons and kernels.

A poll of one device yields one :class:`Frame`: a timestamp and values/qualities aligned to the
device's compiled point list. Aligned contiguous arrays (rather than per-sample records) are what
the C kernels take without copying.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt


class Quality(IntEnum):
    """Quality of one value, ordered so that ``max`` gives the worst."""

    GOOD = 0
    UNCERTAIN = 1  # decoded but outside its plausible range, or stale
    BAD = 2  # no value: the device did not answer or answered garbage


FloatArray = npt.NDArray[np.float64]
QualityArray = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class PointSpec:
    """What a daemon needs to know of one point after compilation (no protocol details)."""

    name: str
    unit: str = ""
    low: float | None = None  # alarm limits; None means unlimited
    high: float | None = None
    deadband: float = 0.0  # absolute, in the point's unit, for report-by-exception


@dataclass(frozen=True)
class Frame:
    """All points of one device read at one instant (wall-clock seconds since the epoch)."""

    device: str
    ts: float
    values: FloatArray
    quality: QualityArray

    @classmethod
    def bad(cls, device: str, ts: float, n_points: int) -> Frame:
        """A frame for a failed read: every value NaN and BAD, never a held last value."""
        return cls(
            device,
            ts,
            np.full(n_points, np.nan, dtype=np.float64),
            np.full(n_points, Quality.BAD, dtype=np.uint8),
        )
