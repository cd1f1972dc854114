"""The README's main job: `gridgate demo` shows the whole gateway, with nothing configured."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.hil
LINE = re.compile(r"^\d\d:\d\d:\d\d  (\w+)\s+(\S*)\s+(.*)$")


def _demo(*args: str, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    # Exactly as typed, from another directory: the demo must not depend on the working dir.
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd="/",
    )


def _lines(out: str) -> list[tuple[str, str, str]]:
    return [m.groups() for ln in out.splitlines() if (m := LINE.match(ln))]  # type: ignore[misc]


def test_demo_shows_every_daemon_and_the_plants_early_warning(tmp_path: Path) -> None:
    proc = _demo("--duration", "90", "--keep", str(tmp_path))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout
    assert "Each line is one message" in out  # the legend
    assert "Runs for 90 s (Ctrl-C stops it earlier)" in out
    lines = _lines(out)
    by_daemon = {d for d, _, _ in lines}
    assert {"grid", "bms", "plant", "uplink"} <= by_daemon, by_daemon
    # The meters, the estimate of the nodes nobody measures, the rack, the turbine.
    for meter in ("head", "cab1", "cab2", "cab3"):
        assert any(dev == meter and "points good" in text for _, dev, text in lines), meter
    estimates = [t for d, dev, t in lines if (d, dev) == ("grid", "feeder") and "lowest" in t]
    assert estimates and re.search(r"lowest 1\.\d{3} pu \(2\d\d\.\d V\) at node \d+", estimates[-1])
    rack = [t for d, dev, t in lines if (d, dev) == ("bms", "rack")]
    assert rack and re.search(r"SOC \d+\.\d/\d+\.\d/\d+\.\d %, cell spread \d+ mV", rack[-1])
    # The loose sense wire: a board fault, then the rack's faulted count.
    bms_alarms = [t for d, _, t in lines if d == "bms" and t.startswith(">>> ALARM")]
    assert any("board_open_wire raised" in t for t in bms_alarms), bms_alarms
    assert re.search(r", [1-9]\d* faulted", rack[-1]), rack[-1]
    plant = [t for d, dev, t in lines if (d, dev) == ("plant", "gt1")]
    assert any(re.match(r"running, [\d,]+ kW, anomaly score \d", t) for t in plant), plant
    warning = [t for t in plant if t.startswith(">>> ALARM anomaly raised")]
    assert warning and "look at bearing" in warning[0], plant
    # The warning grows during the demo: the plant was seen normal first.
    first_summary = next(i for i, t in enumerate(plant) if t.startswith("running"))
    assert first_summary < plant.index(warning[0])
    assert [t for d, _, t in lines if d == "uplink"].count("offline") == 1
    last = out.strip().splitlines()[-1]
    m = re.match(
        r"gridgate demo: (\d+) messages upstream \(grid (\d+), bms (\d+), plant (\d+); "
        r"(\d+) feeder estimates\), alarms: .*plant \d.*; 0 duplicate\(s\)$",
        last,
    )
    assert m, last
    # --keep: the config and the spool stay for inspection.
    assert (tmp_path / "gridgate.toml").exists() and (tmp_path / "state" / "spool.sqlite").exists()
    assert "running grid, bms, plant, uplink" in (tmp_path / "gridgate.log").read_text()


def test_demo_only_narrows_it(tmp_path: Path) -> None:
    proc = _demo("--duration", "15", "--only", "bms", timeout=90)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    daemons = {d for d, _, _ in _lines(proc.stdout)}
    assert daemons == {"bms", "uplink"}, daemons
    assert "gridgate demo: " in proc.stdout.strip().splitlines()[-1]
    bad = _demo("--only", "grid,foo", timeout=30)
    assert bad.returncode == 2 and "grid,foo" in bad.stderr


def test_demo_without_mosquitto_says_how_to_install_it(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, GRIDGATE_MOSQUITTO=str(tmp_path / "no-such-mosquitto")),
    )
    assert proc.returncode == 69
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "mosquitto not found" in lines[0] and "apt-get install mosquitto" in lines[0]


def test_ctrl_c_flushes_the_last_windows_and_says_offline_once(tmp_path: Path) -> None:
    # A terminal's Ctrl-C is SIGINT to the whole foreground process group.
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--only", "grid", "--keep", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd="/",
    )
    try:
        out = ""
        assert proc.stdout is not None
        while "points good" not in out:  # the first window is upstream
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            out += line
        os.killpg(proc.pid, signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out += rest
    assert proc.returncode == 0, err
    assert [t for d, _, t in _lines(out) if d == "uplink"].count("offline") == 1, out
    assert re.search(r"0 duplicate\(s\)$", out.strip()), out[-500:]
    # The partial windows the grid daemon flushed on the way down went upstream, not to the
    # next start: the spool is empty.
    db = sqlite3.connect(tmp_path / "state" / "spool.sqlite")
    try:
        assert db.execute("SELECT count(*) FROM spool").fetchone() == (0,)
    finally:
        db.close()


def _gridgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )


def test_a_second_terminal_can_inspect_the_running_demo(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--keep", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        cwd="/",
    )
    cfg = str(tmp_path / "gridgate.toml")
    try:
        assert demo.stdout is not None
        banner = ""
        seen: set[str] = set()
        while not {"grid", "bms", "plant"} <= seen:
            line = demo.stdout.readline()
            assert line, "the demo ended early"
            banner += line
            if m := LINE.match(line):
                seen.add(m.group(1))
        # The banner tells how, with the demo's own config file.
        assert f"gridgate status -c {cfg}" in banner

        status = _gridgate("status", "-c", cfg)
        assert status.returncode == 0, status.stdout + status.stderr
        for daemon in ("grid", "bms", "plant", "uplink"):
            assert re.search(rf"^{daemon}: running \(pid \d+", status.stdout, re.M), status.stdout

        checked = _gridgate("check-config", "-c", cfg)
        assert checked.returncode == 0, checked.stderr
        assert "config OK" in checked.stdout

        watch = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "points", "head", "--watch", "1", "-c", cfg],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        try:
            watch.wait(timeout=3.5)
        except subprocess.TimeoutExpired:
            watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=20)
        assert watch.returncode == 0, err
        frames = out.count("gridgate points")
        assert frames >= 2, out
        assert re.search(r"voltage_l1\s+2\d\d\.\d+\s+V\s+GOOD", out), out
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.communicate(timeout=60)
    assert demo.returncode == 0
