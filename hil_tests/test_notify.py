"""sd_notify without systemd: the test owns NOTIFY_SOCKET and reads what the daemon says."""

from __future__ import annotations

import itertools
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.bench import Bench

pytestmark = pytest.mark.hil


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def _collect(sock: socket.socket, seconds: float) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        out.append((time.monotonic(), data.decode()))
    return out


def test_ready_status_watchdog_and_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    bench = Bench(tmp_path)
    try:
        bench.start(daemons=())
        started = time.monotonic()
        bench.start_daemon("grid", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        msgs = _collect(sock, 8.0)
        ready = [t for t, m in msgs if "READY=1" in m]
        assert ready, msgs
        # READY comes after the first completed poll, i.e. after the process had time to poll.
        assert ready[0] - started > 0.3
        statuses = [m for _t, m in msgs if m.startswith("STATUS=") and "READY" not in m]
        assert any("meters" in s and "points good" in s for s in statuses), statuses
        pings = [t for t, m in msgs if m == "WATCHDOG=1"]
        assert len(pings) >= 5
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        # WATCHDOG_USEC = 2 s: pings at about half of it.
        assert all(0.7 < g < 1.5 for g in gaps), gaps
        bench.signal("grid", signal.SIGTERM)
        tail = _collect(sock, 3.0)
        assert any("STOPPING=1" in m for _t, m in tail), tail
        assert bench.procs["grid"].wait(timeout=10) == 0
    finally:
        bench.stop()
