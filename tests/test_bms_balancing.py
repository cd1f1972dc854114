"""Closed loop over a simulated day: the monitor plans, the boards bleed, the spread narrows.

The rack simulator's boards take the plan as SET_BALANCE frames (the wire codec and the boards'
self-stop timers are exercised, the pty is not: a day must run in seconds). The kernel runs every
``DT`` simulated seconds; the boards' timeout is two steps, as the daemon's refresh keeps it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivers.cellbus import protocol as p
from drivers.cellbus.frame import FrameParser, encode
from gateway.bms.config import BmsConfig
from gateway.bms.layout import StringLayout
from gateway.bms.monitor import StringMonitor
from gateway.config import load_config
from gateway.core.model import Quality
from gateway.sim.cells import Chemistry
from gateway.sim.rack import Profile, RackSim, RackSpec
from gateway.sim.toml_text import dumps

DT = 10.0
DAY = 86_400.0


def config(tmp_path: Path, boards: int, *, target: str = "soc") -> BmsConfig:
    path = tmp_path / "gridgate.toml"
    doc = {
        "gateway": {"site": "s", "id": "g", "state_dir": str(tmp_path)},
        "bms": {
            "chemistry": "nmc",
            "cells": {"capacity_ah": 94.0},
            # The stale-data interlock: readings come once per DT step here; two steps' age is
            # still fresh, a stalled feed still trips it.
            "balancing": {"mode": "active", "target": target, "max_data_age_s": 2 * DT},
            # Never opened: the monitor runs without the daemon, send_masks hands frames to the sim.
            "lines": [{"name": "a", "port": "/dev/null", "boards": boards}],
        },
    }
    path.write_text(dumps(doc))
    cfg = load_config(path, env={}).sections["bms"]
    assert cfg is not None
    return cfg


def send_masks(sim: RackSim, masks: np.ndarray, timeout_s: float) -> None:
    parser = FrameParser()
    for b, mask in enumerate(masks.tolist()):
        frame = encode(b + 1, p.Command.SET_BALANCE, p.encode_balance(int(mask), timeout_s))
        (req,) = parser.feed(frame)
        reply = sim.handle(0, req)  # type: ignore[arg-type]
        assert reply is not None and reply[2] & p.REPLY, "the board refused its mask"


def run_day(tmp_path: Path, balance: bool) -> tuple[float, float, float, float, float]:
    boards = 4
    spec = RackSpec(lines=1, boards_per_line=boards, chemistry=Chemistry.NMC, seed=11)
    sim = RackSim(spec, Profile.day(94.0, seed=2))
    cfg = config(tmp_path, boards, target="soc" if balance else "off")
    mon = StringMonitor(cfg, StringLayout(cfg.rack))
    n = spec.cells
    spread0 = float(np.ptp(sim.soc))
    std0 = float(np.std(sim.soc))
    good = np.full(n, Quality.GOOD, dtype=np.uint8)
    tgood = np.full(spec.boards * spec.temps_per_board, Quality.GOOD, dtype=np.uint8)
    for _ in range(int(DAY / DT)):
        m = sim.measure()
        mon.step(m.t, DT, m.current_a, m.cell_v, good, m.temp_c.reshape(-1), tgood)
        send_masks(sim, mon.estimator.board_mask.astype(np.uint16), 2 * DT)
        sim.step(DT)
    # Independent bound: no cell can lose more than a full day through its resistor at 4.2 V.
    most = 4.2 / spec.bleed_ohm * DAY / float(sim.cells.capacity_as.min())
    return spread0, float(np.ptp(sim.soc)), std0, float(np.std(sim.soc)), most


@pytest.mark.slow
def test_closed_loop_balancing_narrows_the_soc_spread_over_a_day(tmp_path: Path) -> None:
    spread0, spread1, std0, std1, most = run_day(tmp_path, balance=True)
    _s0, free1, _d0, free_std1, _m = run_day(tmp_path, balance=False)
    print(
        f"SOC spread (max-min) {spread0:.4f} -> {spread1:.4f} balanced, {free1:.4f} without; "
        f"std {std0:.4f} -> {std1:.4f} balanced, {free_std1:.4f} without"
    )
    assert spread0 - spread1 > 0.02  # at least 2 % SOC narrower after a day
    assert spread0 - spread1 <= most  # and no more than the resistors can bleed
    assert abs(free1 - spread0) < 0.005  # without balancing the day changes the spread little
    assert std1 < 0.75 * std0
