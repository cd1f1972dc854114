"""Schedules every daemon uses, so they behave the same way.

- :class:`Ticker`: a monotonic grid ``start + k * period`` for cycles (bms at 10 Hz, plant
  scoring). A cycle that overran skips the ticks it missed, counted, instead of firing them in a
  burst that would hit the bus or the model with stale catch-up work.
- :class:`WindowClock`: summary windows end on wall-clock multiples of their length
  (xx:01:00, xx:02:00 ...) so that summaries from many gateways line up upstream
  (:mod:`gateway.core.windows` runs the loop on it). The wait is timed on the monotonic clock, so
  a wall-clock step (NTP) neither stretches a window to an hour nor fires a burst of catch-up
  windows; the window a step falls in is closed on the clock it began on, the next one begins
  on the new clock, and no window after a step is shorter than half a window.
- :class:`ScaledClock`: the time the data is stamped with, which runs faster than the wall clock
  against an accelerated simulator (a day of plant operation on the bench in hours).
"""

from __future__ import annotations

import asyncio
import math
import time


class Ticker:
    def __init__(self, period: float) -> None:
        if not period > 0:
            raise ValueError(f"period must be positive, got {period}")
        self.period = period
        self._next = time.monotonic()
        self.skipped = 0

    async def wait(self) -> int:
        """Sleep until the next tick; return how many ticks were skipped because we were late."""
        self._next += self.period
        now = time.monotonic()
        missed = 0
        if self._next < now:
            missed = math.ceil((now - self._next) / self.period)
            self._next += missed * self.period
            self.skipped += missed
        await asyncio.sleep(self._next - now)
        return missed


# Wall minus monotonic time moves only when the wall clock is stepped (slewing moves both
# clocks alike); a change beyond this is a step, not the noise of reading two clocks.
_STEP_TOLERANCE_S = 0.1


def wall_offset() -> float:
    """Wall-clock time minus monotonic time, read so that a preemption between the readings
    does not show as a step."""
    for _ in range(3):
        m0 = time.monotonic()
        wall = time.time()
        m1 = time.monotonic()
        if m1 - m0 < 0.005:
            break
    return wall - (m0 + m1) / 2


class WindowClock:
    """The ends of summary windows of ``window`` seconds on the wall clock, waited for on the
    monotonic clock."""

    def __init__(self, window: float) -> None:
        if not window > 0:
            raise ValueError(f"window must be positive, got {window}")
        self.window = window
        self.last_step: float | None = None  # the wall-clock step in the window just ended, s
        self._offset = wall_offset()
        self._started = False

    async def next_end(self) -> float:
        """Sleep until the window's end; return its end time, on the clock it began on."""
        w = self.window
        now = self._offset + time.monotonic()
        end = (math.floor(now / w) + 1) * w
        # The first window is whatever is left of the current one (start-up, READY waits for
        # it). Later a window is never shorter than half its length: a wake-up a hair before
        # the boundary, or a step leaving a sliver, would otherwise send an almost empty one.
        if self._started and end - now < w / 2:
            end += w
        self._started = True
        await asyncio.sleep(end - now)
        began_on = self._offset
        self._offset = wall_offset()
        step = self._offset - began_on
        if abs(step) > _STEP_TOLERANCE_S:
            self.last_step = step
            return began_on + time.monotonic()
        self.last_step = None
        return time.time()


class ScaledClock:
    """Wall time at ``speed`` 1; otherwise ``speed`` times faster from construction, on the
    monotonic clock so that a wall clock step (NTP) does not bend the accelerated time."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._t0 = time.time()
        self._m0 = time.monotonic()

    def now(self) -> float:
        if self.speed == 1.0:
            return time.time()
        return self._t0 + self.speed * (time.monotonic() - self._m0)
