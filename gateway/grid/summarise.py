"""Windowed summaries of one device's points, sent by exception.

Every window each point's statistics come from the C kernel; a point is included in the summary
when its mean moved past its deadband, its quality changed, or the window is an integrity window
(every Nth), so that upstream can always rebuild the full picture from a bounded history.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gateway.core.model import Frame, PointSpec, Quality
from gateway.native.stats import ReportByException, WindowStats


def _num(x: float) -> float | None:
    # JSON has no NaN: an empty statistic is null, and the count says why.
    return None if not math.isfinite(x) else float(x)


class Summariser:
    def __init__(
        self,
        device: str,
        points: tuple[PointSpec, ...],
        integrity_every: int,
        window: float | None = None,
    ) -> None:
        self.device = device
        self._window = window
        self._points = points
        self._stats = WindowStats(len(points))
        self._rbe = ReportByException(np.array([p.deadband for p in points], dtype=np.float64))
        self._integrity_every = integrity_every
        self._windows = 0
        self._window_start: float | None = None

    def add(self, frame: Frame) -> None:
        if self._window_start is None:
            self._window_start = frame.ts
        self._stats.add(frame.values, frame.quality, frame.ts)

    def _start(self, now: float) -> float:
        """The first frame's time, unless the wall clock stepped (NTP) between the previous
        window's end and that frame: the end is stamped on the clock the window began on, so a
        start an hour away from it would make a window an hour long or negative. Then the
        window's nominal start, on the end's clock."""
        start = self._window_start if self._window_start is not None else now
        w = self._window
        if w is not None and not now - 1.5 * w <= start <= now:
            return now - w
        return start

    def close_window(self, now: float) -> dict[str, Any]:
        """Summarise the window that ends at ``now`` and start a new one."""
        snap = self._stats.snapshot()
        # Window quality per point: GOOD with only good samples, UNCERTAIN with some bad ones,
        # BAD with none good. This is what report-by-exception compares, next to the mean.
        quality = np.where(
            snap.count == 0, Quality.BAD, np.where(snap.bad > 0, Quality.UNCERTAIN, Quality.GOOD)
        ).astype(np.uint8)
        changed = self._rbe.changed(snap.mean, quality)
        full = self._windows % self._integrity_every == 0
        self._windows += 1
        points: dict[str, Any] = {}
        for i, p in enumerate(self._points):
            if not (full or changed[i]):
                continue
            points[p.name] = {
                "min": _num(snap.min[i]),
                "mean": _num(snap.mean[i]),
                "max": _num(snap.max[i]),
                "last": _num(snap.last[i]),
                "n": int(snap.count[i]),
                "bad": int(snap.bad[i]),
                "q": Quality(int(quality[i])).name,
                "unit": p.unit,
            }
        body = {
            "device": self.device,
            "start": self._start(now),
            "end": now,
            "full": full,
            "good": int(np.count_nonzero(quality == Quality.GOOD)),
            "bad": int(np.count_nonzero(quality == Quality.BAD)),
            "points": points,
        }
        self._stats.reset()
        self._window_start = None
        return body
