"""Windowed summaries and report-by-exception over a device's points (C kernel native/stats.c).

A sample counts only when its quality is GOOD and its value finite; everything else is tallied in
``bad``, so a summary never mixes a held or garbage value into min/mean/max.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gateway.core.errors import NativeError
from gateway.core.model import FloatArray, QualityArray
from gateway.native.ffi import assert_layout, check, lib, ptr

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Twin of gg_stat_t (native/gridgate.h); checked field by field below, at import.
STAT_DTYPE: Final = np.dtype(
    [
        ("count", np.int64),
        ("bad", np.int64),
        ("min", np.float64),
        ("max", np.float64),
        ("mean", np.float64),
        ("m2", np.float64),
        ("last", np.float64),
        ("first_ts", np.float64),
        ("last_ts", np.float64),
    ]
)
assert_layout("gg_stat_t", STAT_DTYPE)

# last_quality of a point never reported: no real Quality equals it, so the first frame reports all.
_NEVER_REPORTED: Final = 255


@dataclass(frozen=True, eq=False)
class WindowSummary:
    """Per-point aggregates of one window; arrays are copies, aligned to the device's points.

    Points without a good sample have count 0 and NaN in every float field.
    """

    count: IntArray
    bad: IntArray
    min: FloatArray
    max: FloatArray
    mean: FloatArray
    variance: FloatArray  # population variance; 0 for one sample
    last: FloatArray
    first_ts: FloatArray
    last_ts: FloatArray


def _frames(
    values: npt.ArrayLike, quality: npt.ArrayLike, n_points: int, ndim: int
) -> tuple[FloatArray, QualityArray]:
    v = np.asarray(values)
    q = np.asarray(quality)
    if v.ndim != ndim or v.shape[-1] != n_points or v.shape != q.shape:
        raise NativeError(
            f"values {v.shape} and quality {q.shape} must both be {ndim}-D with "
            f"{n_points} points in the last axis"
        )
    return v, q


class WindowStats:
    """Running min/max/mean/variance/last of ``n_points`` points until :meth:`reset`."""

    def __init__(self, n_points: int) -> None:
        if n_points < 0:
            raise NativeError(f"n_points must be >= 0, got {n_points}")
        self._state = np.empty(n_points, dtype=STAT_DTYPE)
        # Made once: the state array lives as long as this object and is never replaced, so
        # per-frame calls skip the buffer checks.
        self._state_ptr = ptr("gg_stat_t", self._state, dtype=STAT_DTYPE, writable=True)
        self._ts = np.empty(1, dtype=np.float64)
        self._ts_ptr = ptr("double", self._ts, writable=True)
        self.reset()

    @property
    def n_points(self) -> int:
        return len(self._state)

    def reset(self) -> None:
        """Empty the window of every point."""
        check(lib.gg_stats_reset(self._state_ptr, self.n_points), "gg_stats_reset")

    def add(self, values: npt.ArrayLike, quality: npt.ArrayLike, ts: float) -> None:
        """Add one frame: ``values`` (float64) and ``quality`` (uint8) of every point at ``ts``."""
        v, q = _frames(values, quality, self.n_points, 1)
        self._ts[0] = ts
        self._add(v, q, 1)

    def add_frames(
        self, values2d: npt.ArrayLike, quality2d: npt.ArrayLike, ts1d: npt.ArrayLike
    ) -> None:
        """Add frames in time order: values/quality are [frame, point], ``ts1d`` is [frame]."""
        v, q = _frames(values2d, quality2d, self.n_points, 2)
        t = np.asarray(ts1d)
        if t.shape != (v.shape[0],):
            raise NativeError(f"ts {t.shape} must have one entry per frame ({v.shape[0]})")
        self._add(v, q, v.shape[0], t)

    def _add(
        self, v: FloatArray, q: QualityArray, n_frames: int, ts: FloatArray | None = None
    ) -> None:
        status = lib.gg_stats_add(
            self._state_ptr,
            self.n_points,
            n_frames,
            ptr("double", v),
            ptr("uint8_t", q),
            self._ts_ptr if ts is None else ptr("double", ts),
        )
        # Shapes and dtypes are checked above, so EINVAL here means a non-finite timestamp.
        check(status, "gg_stats_add (timestamps must be finite)")

    def snapshot(self) -> WindowSummary:
        """The window so far; later adds do not change the returned arrays."""
        st = self._state
        variance = np.empty(self.n_points, dtype=np.float64)
        check(
            lib.gg_stats_variance(
                self._state_ptr, self.n_points, ptr("double", variance, writable=True)
            ),
            "gg_stats_variance",
        )
        return WindowSummary(
            count=st["count"].copy(),
            bad=st["bad"].copy(),
            min=st["min"].copy(),
            max=st["max"].copy(),
            mean=st["mean"].copy(),
            variance=variance,
            last=st["last"].copy(),
            first_ts=st["first_ts"].copy(),
            last_ts=st["last_ts"].copy(),
        )


class ReportByException:
    """Decides per frame which points changed enough to be sent upstream.

    A point is reported when its quality changes, or it is GOOD and its value moved by more than
    its deadband (or to/from NaN). A fresh instance, or one after :meth:`reset`, reports every
    point on the next frame, which is what a birth after (re)connect needs.
    """

    def __init__(self, deadband: npt.ArrayLike) -> None:
        db = np.array(deadband, dtype=np.float64, ndmin=1)
        if db.ndim != 1 or not bool(np.all(db >= 0.0)):  # NaN fails >= too
            raise NativeError(f"deadband must be a 1-D array of numbers >= 0, got {db!r}")
        self._deadband = db
        self._last_reported = np.empty(len(db), dtype=np.float64)
        self._last_quality = np.empty(len(db), dtype=np.uint8)
        # Owned, never replaced arrays: their pointers are made once, not per frame.
        self._state_ptrs = (
            ptr("double", self._last_reported, writable=True),
            ptr("uint8_t", self._last_quality, writable=True),
            ptr("double", self._deadband),
        )
        self.reset()

    @property
    def n_points(self) -> int:
        return len(self._deadband)

    def reset(self) -> None:
        """Forget what was reported: the next frame reports every point."""
        self._last_reported.fill(np.nan)
        self._last_quality.fill(_NEVER_REPORTED)

    def changed(self, values: npt.ArrayLike, quality: npt.ArrayLike) -> BoolArray:
        """Which points of this frame to report; remembers them as the last reported."""
        v, q = _frames(values, quality, self.n_points, 1)
        out = np.empty(self.n_points, dtype=np.uint8)
        last_reported, last_quality, deadband = self._state_ptrs
        check(
            lib.gg_rbe(
                self.n_points,
                ptr("double", v),
                ptr("uint8_t", q),
                last_reported,
                last_quality,
                deadband,
                ptr("uint8_t", out, writable=True),
            ),
            "gg_rbe",
        )
        # The kernel writes only 0 or 1, so the bytes are valid booleans as they are.
        return out.view(np.bool_)


__all__ = ["STAT_DTYPE", "ReportByException", "WindowStats", "WindowSummary"]
