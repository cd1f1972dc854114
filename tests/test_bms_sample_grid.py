"""The estimator's dt from the tick grid: whole periods, jitter-free, measured off the grid."""

from __future__ import annotations

import time

import pytest

from gateway.bms.sample_grid import SampleGrid, grid_interval
from gateway.core.clock import Ticker

P = 0.1


def test_a_missed_tick_gives_two_periods() -> None:
    assert grid_interval(P, 0) == P
    assert grid_interval(P, 1) == 2 * P
    assert grid_interval(P, 3) == 4 * P
    with pytest.raises(ValueError):
        grid_interval(P, -1)


def test_jitter_does_not_change_dt() -> None:
    grid = SampleGrid(P)
    assert grid.interval(50.0) == P  # the first sample: one period
    # Samples late by 0..9 ms after each tick: the measured intervals differ, dt does not.
    jitter = [0.004, 0.0, 0.009, 0.001, 0.007, 0.002]
    dts = []
    for k, late in enumerate(jitter, start=1):
        grid.ticked(0)
        dts.append(grid.interval(50.0 + k * P + late))
    assert all(dt == P for dt in dts)  # bit for bit: the kernel's coefficient cache hits
    grid.ticked(1)
    assert grid.interval(50.0 + 8 * P + 0.003) == 2 * P


def test_off_the_grid_the_interval_is_measured() -> None:
    grid = SampleGrid(P)
    grid.interval(10.0)
    assert grid.interval(10.25) == pytest.approx(0.25)  # no tick in between: not on a grid
    grid.ticked(0)
    grid.new_grid()  # the loop restarted with a new ticker after 3 s of backoff
    assert grid.interval(13.25) == pytest.approx(3.0)
    grid.ticked(0)
    assert grid.interval(13.35) == P


async def test_with_a_real_ticker_the_dts_add_up_to_the_elapsed_grid_time() -> None:
    period = 0.04
    grid = SampleGrid(period)
    ticker = Ticker(period)
    # Cycle work in periods: one cycle overruns by half a period, so the ticker skips a tick.
    work = [0.05, 0.3, 0.1, 1.5, 0.2, 0.0]
    starts: list[float] = []
    dts: list[float] = []
    missed: list[int] = []
    for w in work:
        now = time.monotonic()
        starts.append(now)
        dts.append(grid.interval(now))
        time.sleep(w * period)  # CPU-bound work blocks the loop, as a slow cycle does
        missed.append(await ticker.wait())
        grid.ticked(missed[-1])
    assert dts[0] == period
    assert missed[3] >= 1  # the overrun skipped a tick (more only on a badly stalled machine)
    assert dts[1:] == [period * (1 + m) for m in missed[:-1]]
    assert dts[4] >= 2 * period
    # The jitter does not accumulate: the dts cover the time between the first and last sample
    # to within the last sample's own lateness (well under a period on any machine).
    assert abs(sum(dts[1:]) - (starts[-1] - starts[0])) < period / 2
