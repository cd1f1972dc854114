"""The data model shared by drivers, daemons and kernels.

A poll of one device yields one :class:`Frame`: a timestamp and values/qualities aligned to the
device's compiled point list. Aligned contiguous arrays (rather than per-sample records) are what
the C kernels take without copying.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.core.points import PointSpec, Quality

__all__ = ["FloatArray", "Frame", "PointSpec", "Quality", "QualityArray"]


FloatArray = npt.NDArray[np.float64]
QualityArray = npt.NDArray[np.uint8]


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
