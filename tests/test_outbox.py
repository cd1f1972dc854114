"""The outbox keeps rows through a spool that cannot be written, and writes them later in order."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from gateway.spool.outbox import Outbox
from gateway.spool.store import AsyncSpool, Spool


async def test_rows_survive_a_locked_spool_and_keep_their_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path, busy_timeout_ms=50)
    box = Outbox(AsyncSpool(spool), "grid")
    await box.put("summary", [{"n": 1}], ts=1.0)
    # Another process holds the write lock (a stuck writer, a backup tool): writes time out.
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with caplog.at_level(logging.ERROR):
        await box.put("summary", [{"n": 2}], ts=2.0)
        await box.put("alarm", [{"n": 3}], ts=3.0)
    assert box.pending == 2
    assert caplog.text.count("cannot write the spool") == 1  # logged once, not per window
    blocker.execute("ROLLBACK")
    blocker.close()
    await box.put("summary", [{"n": 4}], ts=4.0)
    assert box.pending == 0 and box.written == 4
    rows = spool.peek(0, 10)
    assert [json.loads(r.payload)["n"] for r in rows] == [1, 2, 3, 4]
    assert [r.kind for r in rows] == ["summary", "summary", "alarm", "summary"]
    spool.close()


async def test_reject_new_policy_is_counted_not_retried(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=64, policy="reject_new")
    box = Outbox(AsyncSpool(spool), "grid")
    await box.put("summary", [{"pad": "x" * 40}], ts=1.0)
    await box.put("summary", [{"pad": "y" * 40}], ts=2.0)  # does not fit: rejected by policy
    assert box.pending == 0 and box.rejected == 1 and box.written == 1
    assert spool.stats().rejected == 1
    spool.close()


async def test_pending_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path, busy_timeout_ms=20)
    box = Outbox(AsyncSpool(spool), "grid", max_pending=3)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    for i in range(5):
        await box.put("summary", [{"n": i}], ts=float(i))
    assert box.pending == 3 and box.dropped == 2
    blocker.execute("ROLLBACK")
    blocker.close()
    await box.flush()
    assert [json.loads(r.payload)["n"] for r in spool.peek(0, 10)] == [2, 3, 4]
    spool.close()


async def test_alarms_are_one_transaction_counted_and_logged_once_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.core.alarms import AlarmEvent, Severity

    spool = Spool(tmp_path / "spool.sqlite")
    box = Outbox(AsyncSpool(spool), "plant")
    events = [
        AlarmEvent("limit_high", "raised", "gt1", 5.0, "vib", 8.0, 7.1, "trip", Severity.TRIP),
        AlarmEvent("device_lost", "cleared", "m1", 5.0),
    ]
    with caplog.at_level(logging.WARNING, logger="gateway.spool.outbox"):
        await box.put_alarms(events, ts=6.0)
    assert box.alarms_sent == 2 and box.summaries_sent == 0
    rows = spool.peek(0, 10)
    assert [(r.kind, r.ts) for r in rows] == [("alarm", 6.0), ("alarm", 6.0)]
    assert rows[0].payload == (
        b'{"alarm":"limit_high","state":"raised","device":"gt1","ts":5.0,"point":"vib",'
        b'"value":8.0,"limit":7.1,"cause":"trip","severity":"trip"}'
    )
    assert json.loads(rows[1].payload) == {
        "alarm": "device_lost",
        "state": "cleared",
        "device": "m1",
        "ts": 5.0,
    }
    assert [r.getMessage() for r in caplog.records] == [
        "plant: alarm limit_high raised: gt1 vib trip",
        "plant: alarm device_lost cleared: m1",
    ]
    await box.put_summaries([{"n": 1}, {"n": 2}], ts=7.0)
    assert box.summaries_sent == 2 and box.written == 4
    spool.close()
