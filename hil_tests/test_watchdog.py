"""The watchdog means something: pings stop while the daemon is really hung, and do not stop for
trouble that a restart cannot fix and that the daemon already bounds by its own timeouts.

Allowance arithmetic (gateway/grid/daemon.py ``loops()``; here window 3 s, poll 1 s, timeout 1 s):

- poll loop of a meter: 5 polls x 1 s + 1 s timeout x 1 request + 5 s = 11 s without a frame;
- summarise loop: 2 x 3 s window + 10 s = 16 s without a committed (or retried) window;
- ``watchdog_loop`` checks every WATCHDOG_USEC / 2 = 1 s; under systemd (``WatchdogSec=30s``)
  a hung daemon is killed at most allowance + 30 s after its last progress.

A spool locked by another process (``BEGIN EXCLUSIVE``) is *not* a stall: the write waits the
spool's busy_timeout (10 s < 16 s), fails, the Outbox keeps the rows and the loop beats; a
restart would not unlock the file. Likewise a meter that accepts TCP and never answers yields a
BAD frame per timeout, so its poll loop beats. The hang that must stop the pings is one no timeout
covers: here the process blocks writing its log because its reader (journald, on a gateway) stopped
reading, which freezes the event loop in ``write(2)``. Nothing in production code helps the test.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.bench import Bench

pytestmark = pytest.mark.hil

_F_SETPIPE_SZ = 1031  # fcntl.h; Python 3.11 lacks the constant on some builds


class Journal:
    """Reads a daemon's stderr like journald does, and can stop reading on purpose."""

    def __init__(self, pipe: int) -> None:
        self._fd = pipe
        self.reading = threading.Event()
        self.reading.set()
        self.data = bytearray()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.reading.wait()
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return
            self.data += chunk


class Notify:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.msgs: list[tuple[float, str]] = []

    def collect(self, seconds: float) -> list[tuple[float, str]]:
        out: list[tuple[float, str]] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            out.append((time.monotonic(), data.decode()))
        self.msgs += out
        return out


def pings(msgs: list[tuple[float, str]]) -> list[float]:
    return [t for t, m in msgs if m == "WATCHDOG=1"]


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    try:
        b.start(daemons=())
        yield b
    finally:
        b.stop()


def _start_grid(bench: Bench, notify: Path, log_level: str = "info") -> subprocess.Popen[bytes]:
    text = bench.config.read_text()
    bench.config.write_text(text.replace("[gateway]\n", f'[gateway]\nlog_level = "{log_level}"\n'))
    env = dict(os.environ, PYTHONUNBUFFERED="1", NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="2000000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "-c", str(bench.config), "run", "grid"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    # The smallest pipe the kernel allows: a stalled reader blocks the writer within a few lines.
    fcntl.fcntl(proc.stderr.fileno(), _F_SETPIPE_SZ, 4096)
    return proc


def _stop(proc: subprocess.Popen[bytes], journal: Journal, notify: Notify) -> None:
    journal.reading.set()
    proc.send_signal(signal.SIGTERM)
    tail = notify.collect(3.0)
    assert any("STOPPING=1" in m for _t, m in tail), tail
    assert proc.wait(timeout=15) == 0


def test_pings_stop_while_the_daemon_hangs_and_resume_after(bench: Bench, tmp_path: Path) -> None:
    notify = Notify(tmp_path / "notify.sock")
    proc = _start_grid(bench, tmp_path / "notify.sock", "info")
    assert proc.stderr is not None
    journal = Journal(proc.stderr.fileno())
    try:
        before = notify.collect(4.0)
        assert any("READY=1" in m for _t, m in before), before
        assert len(pings(before)) >= 3, before
        # The journal stops reading, then a technician's reload is refused: the refusal names
        # every bad key on one line, longer than the 4 KiB pipe, and the event loop blocks in
        # write(2) (a real hang; logging only writes on a change of state, so this is the line).
        journal.reading.clear()
        bad = "\n".join(
            f"unknown_setting_number_{i:03d}_from_a_bad_drop_in = 1" for i in range(120)
        )
        dropins = bench.config.parent / "conf.d"
        dropins.mkdir(exist_ok=True)
        (dropins / "90-bad.toml").write_text(f"[gateway]\n{bad}\n")
        proc.send_signal(signal.SIGHUP)
        hung = notify.collect(6.0)
        late = [t for t in pings(hung) if t > hung[0][0] + 2.0] if hung else []
        assert not late, f"pings went on while the daemon was blocked: {hung}"
        assert proc.poll() is None, "the daemon died instead of hanging"
        # The journal reads again: the daemon catches up and pings resume once every loop has
        # made progress again.
        journal.reading.set()
        after = notify.collect(6.0)
        assert len(pings(after)) >= 3, after
        assert b"reload refused" in bytes(journal.data)
    finally:
        try:
            _stop(proc, journal, notify)
        finally:
            if proc.poll() is None:
                proc.kill()


def test_pings_go_on_while_another_process_holds_the_spool(bench: Bench, tmp_path: Path) -> None:
    notify = Notify(tmp_path / "notify.sock")
    proc = _start_grid(bench, tmp_path / "notify.sock", "info")
    assert proc.stderr is not None
    journal = Journal(proc.stderr.fileno())
    spool = bench.state_dir / "spool.sqlite"
    try:
        ready = notify.collect(5.0)
        assert any("READY=1" in m for _t, m in ready), ready
        bench.wait_for("the first summary", lambda: _rows(spool) > 0, timeout=15)
        locker = sqlite3.connect(spool, isolation_level=None, timeout=0)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            held = notify.collect(14.0)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        # Every loop kept beating: a busy spool is bounded by busy_timeout and retried, so the
        # watchdog must not ask systemd for a restart that cannot unlock the file.
        times = pings(held)
        assert len(times) >= 10, held
        assert max(b - a for a, b in itertools.pairwise(times)) < 1.6, times
        before = _rows(spool)
        bench.wait_for("the held rows written", lambda: _rows(spool) > before, timeout=15)
        assert b"cannot write the spool" in bytes(journal.data)
    finally:
        try:
            _stop(proc, journal, notify)
        finally:
            if proc.poll() is None:
                proc.kill()


def _rows(spool: Path) -> int:
    if not spool.exists():
        return 0
    # Nothing deletes rows here (no uplink runs), so the highest sequence number counts them.
    db = sqlite3.connect(spool, timeout=5)
    try:
        row = db.execute("SELECT coalesce(max(seq), 0) FROM spool").fetchone()
    finally:
        db.close()
    return int(row[0])


# --- MemoryDenyWriteExecute=yes, checked for real --------------------------------------------
# systemd implements it with seccomp; the kernel's PR_SET_MDWE (Linux >= 6.3) refuses the same
# thing (a mapping that is, or becomes, writable and executable) and is inherited across exec,
# so a process started under it shows whether the interpreter and its libraries need W+X.
_MDWE = """
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(f"MDWE unavailable: errno {ctypes.get_errno()}")
libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, as NoNewPrivileges=yes
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    sys.exit("MDWE set but a W+X mapping was granted")
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


def _mdwe_available() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", _MDWE, "-c", "pass"], capture_output=True, check=False
    )
    return probe.returncode == 0


def test_grid_runs_under_memory_deny_write_execute(bench: Bench, tmp_path: Path) -> None:
    if not _mdwe_available():
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3): MemoryDenyWriteExecute unchecked")
    notify = Notify(tmp_path / "notify.sock")
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
        WATCHDOG_USEC="2000000",
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _MDWE, "-m", "gateway.cli", "-c", str(bench.config), "run", "grid"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    journal = Journal(proc.stderr.fileno())
    try:
        msgs = notify.collect(5.0)
        assert any("READY=1" in m for _t, m in msgs), (msgs, bytes(journal.data))
        assert len(pings(msgs)) >= 2, msgs
    finally:
        try:
            _stop(proc, journal, notify)
        finally:
            if proc.poll() is None:
                proc.kill()


def test_plant_and_uplink_libraries_work_under_memory_deny_write_execute() -> None:
    # The plant daemon's heavy parts (the TFLite interpreter with XNNPACK, asyncua with
    # cryptography) and the uplink's paho/ssl: loaded and run once under MDWE.
    if not _mdwe_available():
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3): MemoryDenyWriteExecute unchecked")
    model = Path(__file__).parents[1] / "gateway/plant/models/gas_turbine.tflite"
    code = (
        "import numpy as np, ssl, asyncua, paho.mqtt.client, gateway._native\n"
        "from gateway.plant.tflite import load_model\n"
        f"m = load_model({str(model)!r})\n"
        "y = m.run(np.zeros((1, m.input_size), dtype=np.float32))\n"
        "assert np.all(np.isfinite(y)), y\n"
        "ssl.create_default_context()\n"
        "print('ok')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", _MDWE, "-c", code], capture_output=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert run.stdout.strip().endswith(b"ok")
