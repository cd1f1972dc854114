"""The supervisor keeps loops alive: a failing loop is restarted with backoff, others go on."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from gateway.core.notify import Heartbeats
from gateway.core.supervisor import Supervisor


async def test_failing_loop_is_restarted_with_backoff_and_others_continue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[float] = []
    ticks = 0
    loop = asyncio.get_running_loop()

    async def flaky() -> None:
        runs.append(loop.time())
        raise RuntimeError("device exploded")

    async def steady() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    sup = Supervisor("test", backoff_initial=0.05, backoff_cap=0.2)
    sup.add("flaky", flaky)
    sup.add("steady", steady)
    with caplog.at_level(logging.INFO, logger="gateway.core.supervisor"):
        sup.start()
        await asyncio.sleep(1.0)
        await sup.stop()
    assert 4 <= len(runs) <= 20
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    # Capped: no gap above the cap (plus scheduling slack); jittered backoff grows at first.
    assert max(gaps) < 0.2 + 0.1
    assert ticks > 30, "a failing loop must not hold up the others"
    assert sup.restarts["flaky"] == len(runs) or sup.restarts["flaky"] == len(runs) - 1
    assert sup.restarts["steady"] == 0
    assert "loop flaky failed" in caplog.text and "device exploded" in caplog.text


async def test_stop_cancels_and_waits_for_cleanup() -> None:
    cleaned = asyncio.Event()

    async def worker() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    sup = Supervisor("test")
    sup.add("worker", worker)
    sup.start()
    await asyncio.sleep(0.05)
    await sup.stop(timeout=2)
    assert cleaned.is_set()


def test_duplicate_loop_names_are_refused() -> None:
    sup = Supervisor("test")

    async def noop() -> None:
        return None

    sup.add("a", noop)
    with pytest.raises(ValueError, match="already supervised"):
        sup.add("a", noop)


def test_heartbeats_report_stalled_and_first_progress() -> None:
    beats = Heartbeats()
    beats.register("grid.poll.head", allowance=5.0)
    beats.register("uplink.forward", allowance=60.0)
    assert beats.pending_first() == ["grid.poll.head", "uplink.forward"]
    beats.beat("grid.poll.head")
    assert beats.pending_first() == ["uplink.forward"]
    import time

    now = time.monotonic()
    assert beats.stalled(now) == []
    assert beats.stalled(now + 10) == ["grid.poll.head"]
    assert beats.stalled(now + 100) == ["grid.poll.head", "uplink.forward"]
    beats.unregister("grid.poll.head")
    assert beats.stalled(now + 10) == []
