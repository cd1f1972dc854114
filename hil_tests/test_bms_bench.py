"""End to end: ``gridgate run bms`` as a process against the rack simulator on ptys."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hil_tests.bms_bench import BmsBench

pytestmark = pytest.mark.hil


@pytest.fixture
def bms(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[BmsBench]:
    b = BmsBench(tmp_path, mode=getattr(request, "param", "advisory"))
    try:
        b.start()
        yield b
    finally:
        b.stop()


def test_summaries_alarms_status_and_recording(bms: BmsBench) -> None:
    assert bms.rack is not None
    bms.wait_for("two summaries", lambda: len(bms.rows("summary")) >= 2)
    body = bms.rows("summary")[-1]
    truth = bms.rack.do(lambda: bms.rack.sim.soc)  # type: ignore[union-attr]
    assert body["cycles"] >= 5 and body["boards_silent"] == []
    assert abs(body["soc"]["mean"] - float(np.mean(truth))) < 0.05
    assert body["balancing"]["applied"] == 0  # advisory
    # Over-temperature on board l1/3 (index 6): 8 cells' alarms, each raised once.
    bms.rack.do(lambda: bms.rack.sim.set_overtemp(6, 40.0))  # type: ignore[union-attr]

    def ot(state: str) -> list[dict]:
        return [a for a in bms.rows("alarm") if a["alarm"] == "cell_ot" and a["state"] == state]

    bms.wait_for("cell_ot raised", lambda: len(ot("raised")) == 14)
    assert {a["device"] for a in ot("raised")} == {"l1/3"}
    bms.rack.do(lambda: bms.rack.sim.set_overtemp(6, 0.0))  # type: ignore[union-attr]
    bms.wait_for("cell_ot cleared", lambda: len(ot("cleared")) == 14)
    assert len(ot("raised")) == 14
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(bms.config), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "bms: running" in out.stdout and "/8 boards answering" in out.stdout
    assert not [a for a in bms.rows("alarm") if a["alarm"] == "device_lost"]
    assert bms.stop_daemon() == 0
    recordings = sorted((bms.state / "bms-recordings").glob("bms-*.csv"))
    assert recordings and len(recordings[-1].read_text().splitlines()) > 5


def _bleeding(b: BmsBench) -> bool:
    assert b.rack is not None
    sim = b.rack.sim
    return bool(b.rack.do(lambda: bool(sim.bal_mask.any())))


@pytest.mark.parametrize("bms", ["active"], indirect=True)
def test_active_mode_bleeds_and_stops_on_sigterm(bms: BmsBench) -> None:
    assert bms.rack is not None
    bms.wait_for("boards bleeding", lambda: _bleeding(bms))
    bms.wait_for(
        "a summary with bleeding",
        lambda: any(r["balancing"]["applied"] > 0 for r in bms.rows("summary")),
    )
    assert bms.stop_daemon() == 0
    assert not _bleeding(bms)
