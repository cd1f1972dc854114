"""Reload (SIGHUP) with a config that validates but cannot start keeps a config running.

A real ``gridgate run grid`` against the simulated meters. Two ways a valid config can fail to
start: its state directory is a regular file (found before anything is stopped: the daemon never
pauses), and its spool path is a directory (found only when the new spool is opened, after the
daemons stopped: the previous config is started again). Each time the daemon must keep running,
keep producing, and log the reason; then a good config applies.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core.reload_request import request_reload
from hil_tests.bench import Bench

pytestmark = pytest.mark.hil


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    try:
        b.start(daemons=())
        yield b
    finally:
        b.stop()


def _rows(spool: Path) -> int:
    if not spool.exists():
        return 0
    db = sqlite3.connect(spool, timeout=5)  # no uplink runs: the highest seq counts the rows
    try:
        row = db.execute("SELECT coalesce(max(seq), 0) FROM spool").fetchone()
    except sqlite3.OperationalError:  # the table is not there yet
        return 0
    finally:
        db.close()
    return int(row[0])


def _still_producing(bench: Bench, spool: Path) -> None:
    before = _rows(spool)
    bench.wait_for(f"new rows in {spool}", lambda: _rows(spool) > before, timeout=20)


def _reload(bench: Bench, text: str, needle: str, count: int) -> None:
    bench.config.write_text(text)
    bench.signal("grid", signal.SIGHUP)
    bench.wait_for(
        f"{needle!r} logged {count}x", lambda: bench.log("grid").count(needle) >= count, timeout=30
    )


def test_reload_that_cannot_start_keeps_the_old_config(bench: Bench) -> None:
    good = bench.config.read_text()
    old_spool = bench.state_dir / "spool.sqlite"
    bench.start_daemon("grid")
    bench.wait_for("the first summary", lambda: _rows(old_spool) > 0, timeout=30)

    # 1. state_dir is a regular file: refused before anything stops.
    blocker = bench.workdir / "not-a-directory"
    blocker.write_text("a file where the state directory should be\n")
    _reload(bench, good.replace(str(bench.state_dir), str(blocker)), "reload refused", 1)
    # check-config's own path check names it now, before the runtime's.
    assert f"{blocker} is not a directory" in bench.log("grid")
    assert bench.procs["grid"].poll() is None
    _still_producing(bench, old_spool)

    # 2. the spool path is a directory: refused by validation too (a failure only found after the
    # daemons stopped, which brings the previous config back, is tests/test_runtime_reload.py's).
    (bench.state_dir / "spool-dir").mkdir()
    bad_spool = good.replace("[spool]\n", '[spool]\nfile = "spool-dir"\n')
    assert bad_spool != good
    _reload(bench, bad_spool, "reload refused", 2)
    assert "spool-dir" in bench.log("grid").split("reload refused")[-1]
    assert bench.procs["grid"].poll() is None
    _still_producing(bench, old_spool)

    # 3. a good config (a new state directory) applies.
    new_state = bench.workdir / "state2"
    _reload(bench, good.replace(str(bench.state_dir), str(new_state)), "running grid from", 2)
    _still_producing(bench, new_state / "spool.sqlite")
    assert bench.stop_daemon("grid") == 0


def _gridgate_reload(bench: Bench, *args: str) -> subprocess.CompletedProcess[str]:
    """``gridgate reload grid -c FILE``, as a technician types it."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "reload", "grid", "-c", str(bench.config), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_gridgate_reload_answers_with_what_the_daemon_did(bench: Bench) -> None:
    # A SIGHUP always "succeeded": systemctl reload said nothing of a refused config.
    good = bench.config.read_text()
    spool = bench.state_dir / "spool.sqlite"
    runtime_dir = bench.state_dir / "run"
    bench.start_daemon("grid")
    bench.wait_for("the first summary", lambda: _rows(spool) > 0, timeout=30)
    bench.wait_for("the status file", (runtime_dir / "status" / "grid.json").exists, 10)
    pid = bench.procs["grid"].pid

    done = _gridgate_reload(bench)  # the pid from the daemon's status file
    assert done.returncode == 0, done.stderr
    assert f"grid: reloaded {bench.config}" in done.stdout
    assert bench.log("grid").count("reloading: the new config is valid") == 1

    # A broken file: refused with file and key before the daemon is disturbed.
    bench.config.write_text(good.replace("window = 3.0", "window = 0"))
    done = _gridgate_reload(bench, "--pid", str(pid))
    assert done.returncode == 78, done.stderr
    assert f"{bench.config}: grid.window" in done.stderr
    assert "reload refused, keeping the running config" in done.stderr
    assert "reload refused" not in bench.log("grid")  # not signalled

    # The daemon's own refusal reaches the caller too (here bypassing the command's check).
    outcome = request_reload(runtime_dir, "grid", pid, timeout=30)
    assert (outcome.applied, outcome.pid) == (False, pid)
    assert "grid.window" in outcome.reason
    assert bench.procs["grid"].poll() is None
    _still_producing(bench, spool)

    bench.config.write_text(good)
    assert _gridgate_reload(bench).returncode == 0
    assert bench.stop_daemon("grid") == 0
    done = _gridgate_reload(bench)
    assert done.returncode == 3, done.stderr
    assert "grid: not running" in done.stderr
