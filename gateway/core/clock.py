"""Schedules every daemon uses, so they behave the same way.

- :class:`Ticker`: a monotonic grid ``start + k * period`` for cycles (bms at 10 Hz, plant
  scoring). A cycle that overran skips the ticks it missed, counted, instead of firing them in a
  burst that would hit the bus or the model with stale catch-up work.
- :func:`sleep_to_window_end`: summary windows end on wall-clock multiples of their length
  (xx:01:00, xx:02:00 ...) so that summaries from many gateways line up upstream
  (:mod:`gateway.core.windows` runs the loop on it).
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


async def sleep_to_window_end(window: float) -> float:
    """Sleep until the next wall-clock multiple of ``window``; return the wall time then."""
    await asyncio.sleep(window - math.fmod(time.time(), window))
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
