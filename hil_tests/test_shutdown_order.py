"""``gridgate run all`` stops in the order the data flows (issue 13, item 2).

SIGTERM in the middle of a long window: the grid daemon flushes its partial window into the spool,
the uplink delivers that flush to the real broker within its grace, says "offline" once (over
MQTT 5, the bench's protocol, as the will its DISCONNECT asks for), and only then does the process
exit. Before, every loop was cancelled at once and the partial window waited
in the spool for the next start.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core.status import read_status
from gateway.sim.upstream import Upstream
from hil_tests.bench import GATEWAY_ID, SITE, Bench

pytestmark = pytest.mark.hil

STATUS_TOPIC = f"gridgate/{SITE}/{GATEWAY_ID}/status"


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    try:
        b.start(daemons=())
        yield b
    finally:
        b.stop()


def _spooled(spool: Path) -> int:
    db = sqlite3.connect(spool, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM spool").fetchone()[0])
    finally:
        db.close()


def _polled(bench: Bench) -> set[str]:
    grid = read_status(bench.state_dir / "run").get("grid", {})
    return {name for name, m in grid.get("meters", {}).items() if m.get("last_poll")}


def _statuses(bench: Bench, payload: bytes) -> int:
    assert bench.upstream is not None
    return sum(
        1 for m in bench.upstream.messages() if m.topic == STATUS_TOPIC and m.payload == payload
    )


def test_sigterm_mid_window_delivers_the_partial_window_then_offline_once(bench: Bench) -> None:
    assert bench.upstream is not None
    bench.write_config(window=600.0)  # no window closes by itself while the test runs
    proc = bench.start_daemon("all")
    # (READY waits for a first window or 30 s: the status file shows the polls sooner)
    bench.wait_for("every meter polled", lambda: _polled(bench) == set(bench.meters), timeout=60)
    bench.wait_for("online", lambda: _statuses(bench, b"online") >= 1, timeout=20)
    time.sleep(1.0)  # a few polls into the window
    before = {d["seq"] for d in bench.upstream.docs("summary")}

    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = bench.stop_daemon("all", timeout=30)
    took = time.monotonic() - signalled
    assert rc == 0, bench.log("all")
    assert took < 15, f"stop took {took:.1f} s\n{bench.log('all')}"

    # Acknowledged by the broker before the exit: nothing of the flush is left in the spool ...
    assert _spooled(bench.state_dir / "spool.sqlite") == 0, bench.log("all")
    # ... and the upstream consumer gets one partial summary per meter.
    deadline = time.monotonic() + 5
    devices: set[str] = set()
    while time.monotonic() < deadline and devices != set(bench.meters):
        after = [d for d in bench.upstream.docs("summary") if d["seq"] not in before]
        devices = {d["body"]["device"] for d in after}
        time.sleep(0.1)
    assert devices == set(bench.meters), bench.log("all")

    time.sleep(1.0)  # a will published late would show up here
    assert _statuses(bench, b"offline") == 1, [
        (m.payload, m.retained) for m in bench.upstream.messages() if m.topic == STATUS_TOPIC
    ]
    late = Upstream(bench.broker.host, bench.broker.port)  # the retained state says offline
    late.start()
    try:
        deadline = time.monotonic() + 5
        while not late.messages() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(m.topic, m.payload, m.retained) for m in late.messages()] == [
            (STATUS_TOPIC, b"offline", True)
        ]
    finally:
        late.stop()


def test_sigterm_with_the_broker_away_does_not_wait_for_it(bench: Bench) -> None:
    bench.write_config(window=600.0)
    proc = bench.start_daemon("all")
    bench.wait_for("every meter polled", lambda: _polled(bench) == set(bench.meters), timeout=60)
    bench.wait_for("online", lambda: _statuses(bench, b"online") >= 1, timeout=20)
    bench.broker.stop()
    time.sleep(1.0)

    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = bench.stop_daemon("all", timeout=30)
    took = time.monotonic() - signalled
    assert rc == 0, bench.log("all")
    assert took < 10, f"stop took {took:.1f} s\n{bench.log('all')}"
    # The partial window is kept for the next start.
    assert _spooled(bench.state_dir / "spool.sqlite") == len(bench.meters), bench.log("all")
