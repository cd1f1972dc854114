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
