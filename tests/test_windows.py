"""The summary window loop every field daemon runs: windows end on wall-clock multiples, an
empty window sends nothing, the watchdog hears of a window only once it was sent, and a wall-clock
step (NTP) neither stretches, inverts nor shreds a window."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from gateway.core.notify import Heartbeats
from gateway.core.windows import SummaryWindows


class _Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[list[dict[str, Any]], float]] = []

    async def put_summaries(self, bodies: list[dict[str, Any]], ts: float) -> None:
        self.sent.append((bodies, ts))


async def test_windows_end_on_wall_clock_multiples_and_beat_after_sending() -> None:
    sink, beats = _Sink(), Heartbeats()
    beats.register("x.summarise", 10.0)
    closed: list[float] = []

    def summarise(now: float) -> list[dict[str, Any]]:
        closed.append(now)
        return [{"n": len(closed)}] if len(closed) % 2 else []  # every other window is empty

    windows = SummaryWindows(0.2, summarise, sink, beats, "x.summarise")
    factory, allowance = windows.loop()
    assert allowance == 2 * 0.2 + 10.0
    task = asyncio.create_task(factory())
    deadline = time.monotonic() + 5.0
    while len(closed) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(closed) >= 3
    for now in closed:
        phase = now % 0.2
        assert min(phase, 0.2 - phase) < 0.05, now
    assert [b for b, _ts in sink.sent][:2] == [[{"n": 1}], [{"n": 3}]]
    assert beats.pending_first() == []


async def test_close_sends_the_partial_window_stamped_now() -> None:
    sink = _Sink()
    windows = SummaryWindows(60.0, lambda now: [{"end": now}], sink, Heartbeats(), "x.summarise")
    await windows.close(123.5)
    assert sink.sent == [([{"end": 123.5}], 123.5)]


class _SteppedWall:
    """time.time() plus an offset the test steps, as an NTP step would; monotonic untouched."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + self.offset)


async def _run_windows(
    window: float, wall: _SteppedWall, step: float
) -> list[tuple[float, float, float]]:
    """Run the loop with a sampler that stamps samples on the wall clock (as the pollers do);
    step the wall clock in the middle of the third window. Returns per window the first
    sample's stamp, the window's end stamp, and the monotonic time it closed."""
    samples: list[float] = []
    closed: list[tuple[float, float, float]] = []

    def summarise(now: float) -> list[dict[str, Any]]:
        closed.append((samples[0] if samples else now, now, time.monotonic()))
        samples.clear()
        return [{"end": now}]

    async def sampler() -> None:
        while True:
            samples.append(time.time())
            await asyncio.sleep(window / 20)

    windows = SummaryWindows(window, summarise, _Sink(), Heartbeats(), "x.summarise")
    tasks = [asyncio.create_task(sampler()), asyncio.create_task(windows.run())]
    deadline = time.monotonic() + 10.0
    while len(closed) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    await asyncio.sleep(window / 2)
    wall.offset = step
    while len(closed) < 6 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return closed


@pytest.mark.parametrize("step", [3600.0, -3600.0])
async def test_an_hour_step_keeps_every_window_its_length(
    monkeypatch: pytest.MonkeyPatch, step: float
) -> None:
    """Was: the window the step fell in began on the old clock and ended on the new one, an
    hour long after +1 h and minus an hour after -1 h (seen in hil_tests/test_clock_step.py)."""
    w = 0.2
    closed = await _run_windows(w, _SteppedWall(monkeypatch), step)
    assert len(closed) >= 6
    for start, end, _mono in closed[1:]:  # the first window is what was left at start
        assert 0 < end - start <= w + 0.05, (start, end)
    ends = [end for _s, end, _m in closed]
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    # One jump by the step, between the window it fell in and the next; the rest a window each.
    assert sum(1 for g in gaps if abs(g - (w + step)) < 0.05) == 1, gaps
    assert all(abs(g - w) < 0.05 or abs(g - (w + step)) < 0.05 for g in gaps), gaps
    assert abs(gaps[1] - w) < 0.05, "the window the step fell in is stamped on its own clock"
    # Timed on the monotonic clock: no catch-up burst, no hour-long wait.
    lengths = [b - a for (_s, _e, a), (_s2, _e2, b) in itertools.pairwise(closed)]
    assert all(abs(x - w) < 0.05 for x in lengths), lengths


async def test_a_step_never_leaves_a_sliver_of_a_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: a step of +0.17 s against 0.2 s windows left a window of 0.03 s (a step of 0.17 s
    against 60 s windows is NTP's everyday correction at a boundary's edge)."""
    w = 0.2
    closed = await _run_windows(w, _SteppedWall(monkeypatch), 0.17)
    lengths = [b - a for (_s, _e, a), (_s2, _e2, b) in itertools.pairwise(closed)]
    assert all(w / 2 - 0.02 <= x <= 1.5 * w + 0.05 for x in lengths), lengths
    for start, end, _mono in closed[1:]:
        assert end > start, (start, end)
