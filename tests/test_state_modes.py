"""State files 0600 in 0700 directories whatever the umask the daemon was started with.

Under systemd the units set ``UMask=0077``; started by hand (a technician's shell, a bench, a
container) the umask is usually 022, which made the spool and the status files world-readable.
A real ``gridgate run uplink`` is started with umask 022 and the modes on disk are checked.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from gateway.sim.broker import free_port


def _mode(p: Path) -> str:
    return oct(stat.S_IMODE(p.stat().st_mode))


def test_state_and_status_are_private_even_with_umask_022(tmp_path: Path) -> None:
    state = tmp_path / "var" / "state"  # neither exists: the daemon creates both levels
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        f'[gateway]\nsite = "s"\nid = "g"\nstate_dir = "{state}"\nstatus_interval = 0.2\n'
        f'[uplink]\nhost = "127.0.0.1"\nport = {free_port()}\ntls = false\n'  # nobody listens
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "-c", str(cfg), "run", "uplink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=lambda: os.umask(0o022),  # noqa: PLW1509  (the point of the test)
    )
    status = state / "run" / "status" / "uplink.json"
    spool = state / "spool.sqlite"
    wal = state / "spool.sqlite-wal"
    try:
        deadline = time.monotonic() + 30
        while not (status.exists() and wal.exists()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1].decode()
            time.sleep(0.1)
        modes = {
            str(p.relative_to(tmp_path)): _mode(p)
            for p in (state.parent, state, spool, wal, state / "run", status.parent, status)
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert modes == {
        "var": "0o700",
        "var/state": "0o700",
        "var/state/spool.sqlite": "0o600",
        "var/state/spool.sqlite-wal": "0o600",
        "var/state/run": "0o700",
        "var/state/run/status": "0o700",
        "var/state/run/status/uplink.json": "0o600",
    }


def test_a_spool_left_world_readable_is_made_private_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    spool = state / "spool.sqlite"
    spool.touch(mode=0o644)
    spool.chmod(0o644)  # as an earlier version left it under umask 022
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        f'[gateway]\nsite = "s"\nid = "g"\nstate_dir = "{state}"\nstatus_interval = 0.2\n'
        f'[uplink]\nhost = "127.0.0.1"\nport = {free_port()}\ntls = false\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "-c", str(cfg), "run", "uplink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while _mode(spool) != "0o600" and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1].decode()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert _mode(spool) == "0o600"
