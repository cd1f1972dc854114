"""The summary window loop every field daemon runs: windows end on wall-clock multiples, an
empty window sends nothing, and the watchdog hears of a window only once it was sent."""

from __future__ import annotations

import asyncio
import time
from typing import Any

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
