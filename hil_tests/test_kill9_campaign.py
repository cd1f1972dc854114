"""kill -9 at random moments, many times: every daemon, not only the uplink.

A SIGKILL gives a daemon no chance to flush: what it had committed to the spool must survive and
reach upstream in order (at least once: duplicates only from a killed uplink's in-flight window);
what it held in memory (the current window) is lost by design. The spool must open after every
kill, and the daemon must be producing again after each restart.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sim.toml_text import dumps
from gateway.spool.store import Spool
from hil_tests.bench import Bench
from hil_tests.bms_bench import BmsBench
from hil_tests.test_grid_bench import _assert_complete_in_order, _seqs, _spool_depth
from hil_tests.test_plant_bench import SPEED, PlantBench

pytestmark = [pytest.mark.hil, pytest.mark.slow]

# 100 kills of each field daemon (the grid daemon and the uplink together), as the issue asks;
# fewer with GRIDGATE_KILLS set for a quick local run. The pauses between kills are drawn from a
# range that covers each daemon's start-up (kills while it starts) and its steady state (kills
# after it committed), kept short enough that the three campaigns take about 5 minutes in CI.
KILLS = int(os.environ.get("GRIDGATE_KILLS", "100"))
BMS_KILLS = KILLS
PLANT_KILLS = KILLS
INFLIGHT = 10  # the bench's [uplink] inflight


def _kill(proc_name: str, bench: Bench) -> None:
    proc = bench.procs[proc_name]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, f"{proc_name} had exited before the kill"


def test_grid_and_uplink_killed_100_times_lose_nothing_committed(bench: Bench) -> None:
    rng = random.Random(11)
    bench.wait_for("first summaries", lambda: len(_seqs(bench)) >= 4, timeout=40)
    kills = {"grid": 0, "uplink": 0}
    for _ in range(KILLS):
        # Random moments include a daemon's own start-up: the previous restart is not awaited.
        time.sleep(rng.uniform(0.05, 2.0))
        name = rng.choice(("grid", "uplink"))
        _kill(name, bench)
        kills[name] += 1
        bench.start_daemon(name)
    # Both are alive and working after the campaign: new rows are made and delivered.
    n = len(set(_seqs(bench)))
    bench.wait_for("summaries after the last kill", lambda: len(set(_seqs(bench))) > n + 4, 60)
    assert bench.stop_daemon("grid") == 0  # flushes its window into the spool
    bench.wait_for("spool drained", lambda: _spool_depth(bench) == 0, timeout=90)
    seqs = _seqs(bench)
    _assert_complete_in_order(seqs)
    assert min(seqs) == 1, "the first rows were lost"
    duplicates = len(seqs) - len(set(seqs))
    assert duplicates <= kills["uplink"] * INFLIGHT, (duplicates, kills)
    for name in ("grid", "uplink"):
        assert "Traceback" not in bench.log(name), bench.log(name)[-3000:]
    print(
        f"kill -9 campaign: {kills['grid']} grid + {kills['uplink']} uplink kills, "
        f"{len(set(seqs))} rows delivered, 0 lost, {duplicates} duplicates"
    )


@pytest.fixture
def bms(tmp_path: Path) -> Iterator[BmsBench]:
    b = BmsBench(tmp_path)
    try:
        b.start()
        yield b
    finally:
        b.stop()


def _spooled_seqs(b: BmsBench) -> list[int]:
    with Spool(b.state / "spool.sqlite", max_bytes=256_000_000) as sp:
        return [r.seq for r in sp.peek(0, 1_000_000)]


def test_bms_killed_at_random_moments_keeps_its_spool_and_restarts(bms: BmsBench) -> None:
    rng = random.Random(5)
    bms.wait_for("first summaries", lambda: len(bms.rows("summary")) >= 1, timeout=30)
    for i in range(BMS_KILLS):
        # A restart reaches its first cycle within about a second: kills land in start-ups and
        # in steady state.
        time.sleep(rng.uniform(0.05, 1.5))
        assert bms.proc is not None
        bms.proc.send_signal(signal.SIGKILL)
        bms.proc.wait(timeout=10)
        committed = _spooled_seqs(bms)  # the spool opens after every kill
        assert committed == list(range(1, len(committed) + 1)), f"kill {i}: rows lost or reordered"
        bms.start_daemon()
    n = len(bms.rows("summary"))
    bms.wait_for("summaries after the last kill", lambda: len(bms.rows("summary")) > n, 60)
    assert bms.stop_daemon() == 0
    seqs = _spooled_seqs(bms)
    assert seqs == list(range(1, len(seqs) + 1))
    for row in bms.rows("summary"):
        json.dumps(row)  # every committed row is whole JSON
    assert "Traceback" not in bms.log(), bms.log()[-3000:]
    print(f"kill -9 campaign: {BMS_KILLS} bms kills, {len(seqs)} rows committed, 0 lost")


# The plant bench saves its maintenance counters every second (the least the config allows) and
# before every summary: a kill loses at most the counting since the last save, that is one second
# of wall time (SPEED plant seconds) plus the sample the save waits for, bounded here by another
# second. Upstream the counters never go back: what a summary showed was saved before it.
SAVE_EVERY_S = 1


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[PlantBench]:
    b = PlantBench(tmp_path)
    try:
        b.start()
        # The bench writes the plant daemon's defaults; this campaign saves every second.
        b.stop_daemon("plant")  # before it began: nothing of it is kept
        config = tomllib.loads(b.config.read_text())
        config["plant"]["maintenance"] = {"save_every_s": SAVE_EVERY_S}
        b.config.write_text(dumps(config))
        _start_plant(b)
        yield b
    finally:
        b.stop()


def _start_plant(b: PlantBench) -> None:
    log = (b.workdir / "plant.log").open("ab")
    b.procs["plant"] = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "-c", str(b.config), "run", "plant"],
        stdout=log,
        stderr=log,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    log.close()


def _plant_status_counters(b: PlantBench) -> dict[str, float] | None:
    """The counters the running daemon last wrote into its status file (0.5 s old at most)."""
    try:
        doc = json.loads((b.workdir / "state" / "run" / "status" / "plant.json").read_text())
    except (OSError, ValueError):
        return None
    counters: dict[str, float] | None = doc.get("counters")
    return counters


def _saved_counters(b: PlantBench) -> dict[str, float]:
    """The counter file as a restart reads it: whole JSON after every kill (fsync + rename)."""
    saved: dict[str, float] = json.loads((b.workdir / "state" / "plant-counters.json").read_text())
    return saved


def test_plant_killed_at_random_moments_keeps_counters_and_loses_nothing(
    plant: PlantBench,
) -> None:
    rng = random.Random(17)
    assert plant.upstream is not None
    plant.wait_for("first summaries", lambda: len(plant.docs("summary")) >= 2, 60)
    bound_h = (SAVE_EVERY_S + 1.0) * SPEED / 3600.0
    prev = _saved_counters(plant)
    worst = 0.0
    for i in range(PLANT_KILLS):
        time.sleep(rng.uniform(0.05, 2.0))
        shown = _plant_status_counters(plant)
        proc = plant.procs["plant"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL, "plant had exited before the kill"
        with Spool(plant.workdir / "state" / "spool.sqlite", max_bytes=256_000_000) as sp:
            left = [r.seq for r in sp.peek(0, 1_000_000)]  # the spool opens after every kill
        assert left == list(range(min(left, default=1), max(left, default=0) + 1)), (i, left)
        saved = _saved_counters(plant)
        for key in ("operating_hours", "starts", "trips"):
            assert saved[key] >= prev[key], f"kill {i}: {key} went back: {prev} -> {saved}"
        if shown is not None and shown["operating_hours"] >= prev["operating_hours"]:
            lost = shown["operating_hours"] - saved["operating_hours"]
            worst = max(worst, lost)
            assert lost <= bound_h, f"kill {i}: {lost * 3600:.1f} plant s of counting lost"
        prev = saved
        _start_plant(plant)
    n = len(plant.docs("summary"))
    plant.wait_for(
        "producing after the last kill",
        lambda: any(d["body"]["power_kw"] is not None for d in plant.docs("summary")[n:]),
        60,
    )
    assert plant.stop_daemon("plant") == 0
    plant.wait_for("spool drained", lambda: _plant_spool_depth(plant) == 0, 60)
    seqs = [d["seq"] for d in plant.upstream.docs() if d.get("daemon") == "plant"]
    _assert_complete_in_order(seqs)
    assert min(seqs) == 1, "the first rows were lost"
    assert len(seqs) == len(set(seqs)), "duplicates without an uplink kill"
    hours = [d["body"]["counters"]["operating_hours"] for d in plant.docs("summary")]
    backwards = [(a, b) for a, b in itertools.pairwise(hours) if b < a]
    assert not backwards, f"operating hours went back upstream: {backwards[:5]}"
    assert hours[-1] > hours[0], "the counters never advanced"
    assert "Traceback" not in plant.log("plant"), plant.log("plant")[-3000:]
    print(
        f"kill -9 campaign: {PLANT_KILLS} plant kills, {len(seqs)} rows delivered, 0 lost, "
        f"0 duplicates; operating hours {hours[0]:.4f} -> {hours[-1]:.4f} h, "
        f"at most {worst * 3600:.1f} plant s lost at a kill (bound {bound_h * 3600:.0f})"
    )


def _plant_spool_depth(b: PlantBench) -> int:
    with Spool(b.workdir / "state" / "spool.sqlite", max_bytes=256_000_000) as sp:
        return len(sp.peek(0, 1_000_000))
