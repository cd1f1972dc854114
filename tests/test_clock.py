"""The shared schedules: a ticker that skips instead of bursting, windows on the wall clock
(wall-clock steps: tests/test_windows.py)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from gateway.core.clock import Ticker, WindowClock, wall_offset


async def test_ticker_keeps_a_grid_and_skips_missed_ticks() -> None:
    ticker = Ticker(0.05)
    start = time.monotonic()
    assert await ticker.wait() == 0
    await asyncio.sleep(0.12)  # an overrun of more than two periods
    missed = await ticker.wait()
    assert missed >= 2 and ticker.skipped == missed
    # Back on the original grid, not shifted by the overrun.
    phase = (time.monotonic() - start) / 0.05
    assert abs(phase - round(phase)) < 0.4
    assert await ticker.wait() == 0


async def test_window_end_is_a_wall_clock_multiple() -> None:
    clock = WindowClock(0.2)
    for _ in range(3):
        ended = await clock.next_end()
        assert math.fmod(ended, 0.2) < 0.05 or 0.2 - math.fmod(ended, 0.2) < 0.05
        assert clock.last_step is None


def test_wall_offset_is_steady_without_a_step() -> None:
    offsets = [wall_offset() for _ in range(100)]
    assert max(offsets) - min(offsets) < 0.01


def test_window_clock_refuses_a_non_positive_window() -> None:
    with pytest.raises(ValueError, match="positive"):
        WindowClock(0)


def test_ticker_refuses_a_non_positive_period() -> None:
    with pytest.raises(ValueError, match="positive"):
        Ticker(0)
