"""gridgate status and gridgate points, run exactly as a technician types them.

Exit status 0 when every configured daemon runs, 3 when one does not, 78 when the config is
invalid (after showing what the runtime directory holds all the same); --watch draws frame after
frame into a pipe and ends with 0 on Ctrl-C. Status files are written the way a daemon writes them
(gateway.core.status.write_status), and one test runs a real daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from gateway.cli import _parser
from gateway.core.status import write_status
from gateway.sim.broker import free_port

EX_NOT_RUNNING, EX_CONFIG = 3, 78
_SCRIPT = Path(sys.executable).with_name("gridgate")
GRIDGATE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "gateway.cli"]


def _config(tmp_path: Path, uplink_port: int = 1883) -> Path:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        f'[gateway]\nsite = "s"\nid = "g"\nstate_dir = "{tmp_path / "state"}"\n'
        "status_interval = 0.2\n"
        f'[uplink]\nhost = "127.0.0.1"\nport = {uplink_port}\ntls = false\n'
        '[grid.meters.head]\nprofile = "eastron_sdm630"\ntransport = "tcp"\n'
        'host = "127.0.0.1"\nport = 5020\nunit_id = 1\n'
    )
    return cfg


def _runtime(tmp_path: Path) -> Path:
    return tmp_path / "state" / "run"  # the default next to a state_dir of one's own


def _gridgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GRIDGATE, *args], capture_output=True, text=True, timeout=60, check=False
    )


def _meter_status() -> dict[str, object]:
    return {
        "lines": ["head: ok, 35 good, 0 bad"],
        "meters": {
            "head": {
                "state": "ok",
                "last_poll": time.time(),
                "values": {"voltage_l1": [231.5, "GOOD", "V"], "power_l1": [None, "BAD", "W"]},
            }
        },
    }


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_no_daemon_running_says_not_running_and_exits_3(tmp_path: Path) -> None:
    out = _gridgate("status", "-c", str(_config(tmp_path)))
    assert out.returncode == EX_NOT_RUNNING, out.stderr
    assert "grid: not running (no status in" in out.stdout
    assert "uplink: not running (no status in" in out.stdout


def test_every_configured_daemon_running_exits_0(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    write_status(_runtime(tmp_path), "grid", {"state": "running", **_meter_status()})
    write_status(_runtime(tmp_path), "uplink", {"state": "running", "lines": ["broker: up"]})
    out = _gridgate("status", "-c", str(cfg))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"grid: running (pid {os.getpid()}" in out.stdout
    assert "  head: ok, 35 good, 0 bad" in out.stdout
    doc = json.loads(_gridgate("status", "--json", "-c", str(cfg)).stdout)
    assert doc["exit"] == 0 and doc["not_running"] == [] and doc["config_ok"] is True


def test_one_daemon_dead_or_stopped_exits_3(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    write_status(_runtime(tmp_path), "grid", {"state": "running", **_meter_status()})
    write_status(_runtime(tmp_path), "uplink", {"state": "stopped"})
    out = _gridgate("status", "-c", str(cfg))
    assert out.returncode == EX_NOT_RUNNING
    assert "uplink: not running (stopped" in out.stdout

    doc = json.loads((_runtime(tmp_path) / "status" / "uplink.json").read_text())
    doc.update(state="running", pid=_gone_pid())
    (_runtime(tmp_path) / "status" / "uplink.json").write_text(json.dumps(doc))
    out = _gridgate("status", "-c", str(cfg))
    assert out.returncode == EX_NOT_RUNNING
    assert f"uplink: not running (pid {doc['pid']} is gone" in out.stdout


def test_an_invalid_config_still_shows_the_runtime_dir_then_exits_78(tmp_path: Path) -> None:
    runtime = tmp_path / "rt"
    write_status(runtime, "grid", {"state": "running", **_meter_status()})
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nsite = "a/b"\n')
    out = _gridgate("status", "-c", str(bad), "--runtime-dir", str(runtime))
    assert out.returncode == EX_CONFIG
    assert "gateway.site" in out.stderr  # the problem, with its key
    assert "grid: running" in out.stdout and "  head: ok" in out.stdout
    points = _gridgate("points", "-c", str(bad), "--runtime-dir", str(runtime))
    assert points.returncode == EX_CONFIG
    assert "voltage_l1" in points.stdout and "GOOD" in points.stdout
    # Without --runtime-dir it reads the packaged default and says so.
    out = _gridgate("status", "-c", str(bad))
    assert out.returncode == EX_CONFIG
    assert "/run/gridgate" in out.stdout


def test_points_shows_values_with_quality(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    write_status(_runtime(tmp_path), "grid", {"state": "running", **_meter_status()})
    out = _gridgate("points", "head", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "grid / head (ok, last poll" in out.stdout
    assert sorted(ln.split() for ln in out.stdout.splitlines()[1:]) == [
        ["power_l1", "-", "W", "BAD"],
        ["voltage_l1", "231.5", "V", "GOOD"],
    ]
    missing = _gridgate("points", "cab9", "-c", str(cfg))
    assert missing.returncode == 1 and "no live values for device 'cab9'" in missing.stderr


def _frames(stream: IO[str], title: str, count: int, timeout: float = 30.0) -> str:
    seen, text = 0, ""
    deadline = time.monotonic() + timeout
    while seen < count and time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        text += line
        seen += line.startswith(title)
    assert seen >= count, text
    return text


@pytest.mark.parametrize(
    ("command", "title"), [(["status"], "gridgate status"), (["points", "head"], "gridgate points")]
)
def test_watch_into_a_pipe_draws_frames_until_ctrl_c(
    command: list[str], title: str, tmp_path: Path
) -> None:
    cfg = _config(tmp_path)
    write_status(_runtime(tmp_path), "grid", {"state": "running", **_meter_status()})
    proc = subprocess.Popen(
        [*GRIDGATE, *command, "--watch", "0.2", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        text = _frames(proc.stdout, title, count=3)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "\033[" not in text  # no screen control codes into a pipe
    assert "-" * 40 in text  # frames are separated


def test_status_of_a_real_daemon(tmp_path: Path) -> None:
    # A real `gridgate run uplink` (its broker away: it runs and retries); the grid is not run.
    cfg = _config(tmp_path, uplink_port=free_port())
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(
        [*GRIDGATE, "run", "uplink", "-c", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    status = _runtime(tmp_path) / "status" / "uplink.json"
    try:
        deadline = time.monotonic() + 30
        while not status.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        out = _gridgate("status", "-c", str(cfg))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert f"uplink: running (pid {proc.pid}" in out.stdout, out.stdout
    assert "grid: not running" in out.stdout
    assert out.returncode == EX_NOT_RUNNING  # the grid daemon is configured and not running
    after = _gridgate("status", "-c", str(cfg))
    assert "uplink: not running (stopped" in after.stdout


def test_help_has_text_for_every_option_and_no_markup() -> None:
    todo, seen = [_parser()], {}
    while todo:
        p = todo.pop()
        seen[p.prog] = p
        assert "``" not in p.format_help(), p.prog  # docstring markup leaking into --help
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    # Every option and argument of every command explains itself (scan opcua's did not).
    missing = [
        (prog, a.dest)
        for prog, parser in seen.items()
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction) and not a.help
    ]
    assert missing == []
    for prog in ("gridgate status", "gridgate points"):
        assert "exit status" in seen[prog].format_help()
    out = _gridgate("status", "--help")
    assert out.returncode == 0 and "78" in out.stdout and "--watch" in out.stdout
