"""The integration interval between two rack samples, taken from the tick grid they are taken on.

The cycle loop runs on a :class:`~gateway.core.clock.Ticker` grid and every cycle starts with the
SAMPLE_NOW broadcast, so the boards sample at ``origin + k * period`` plus a scheduling delay
that does not accumulate. The interval the estimator integrates over is therefore the nominal
period times the ticks between the two samples (two after a skipped tick), not the measured
difference of two jittered instants: the jitter cancels from one cycle to the next, and a dt
that is the same float every cycle lets the cells kernel reuse its per-cell exp() coefficients.

Two samples share a grid only when the ticker reported the tick between them. The first sample
after the loop (re)started (a new ticker, a new origin) or a cycle run outside the loop is not on
the previous sample's grid: its interval is the measured one.
"""

from __future__ import annotations


def grid_interval(period: float, ticks_missed: int) -> float:
    """Seconds between two samples on consecutive cycles of a grid with ``ticks_missed`` skipped
    ticks between them (``Ticker.wait``'s return value)."""
    if ticks_missed < 0:
        raise ValueError(f"ticks_missed must be >= 0, got {ticks_missed}")
    return period * (1 + ticks_missed)


class SampleGrid:
    """Hands out each sample's dt: on the grid when the ticker vouched for it, else measured."""

    def __init__(self, period: float) -> None:
        if not period > 0:
            raise ValueError(f"period must be positive, got {period}")
        self.period = period
        self._last: float | None = None  # monotonic time of the last sample
        self._ticks_missed: int | None = None  # set by a tick since the last sample

    def new_grid(self) -> None:
        """The loop (re)started with a new ticker: the next sample is off the last one's grid."""
        self._ticks_missed = None

    def ticked(self, ticks_missed: int) -> None:
        """The ticker fired for the next sample, after skipping ``ticks_missed`` ticks."""
        self._ticks_missed = ticks_missed

    def interval(self, now: float) -> float:
        """dt for a sample taken at monotonic ``now``; one period for the very first sample."""
        if self._last is None:
            dt = self.period
        elif self._ticks_missed is None:
            dt = now - self._last
        else:
            dt = grid_interval(self.period, self._ticks_missed)
        self._last = now
        self._ticks_missed = None
        return dt
