"""The BMS daemon in-process against the rack simulator on real ptys, rows read back from a real
spool: alarms raised once within the debounce of becoming detectable and cleared once with
hysteresis, a silent board alone goes missing, masks reach the boards only in active mode."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np

from gateway.bms.daemon import BmsDaemon, build
from gateway.config import load_config
from gateway.core.notify import Heartbeats
from gateway.core.runtime import DaemonContext
from gateway.sim.cells import Chemistry
from gateway.sim.rack import RackSim, RackSpec
from gateway.sim.rack_server import RackServer
from gateway.sim.toml_text import dumps
from gateway.spool.store import AsyncSpool, Spool

BOARDS, CELLS = 3, 14
DEBOUNCE_SET, DEBOUNCE_CLEAR = 3, 5


def write_config(tmp_path: Path, paths: list[str], mode: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "gridgate.toml"
    config = {
        "gateway": {"site": "s", "id": "g", "state_dir": str(tmp_path / "state")},
        "bms": {
            "chemistry": "nmc",
            "window": 1.0,
            "cells": {"capacity_ah": 94.0},
            "limits": {"debounce_set": DEBOUNCE_SET, "debounce_clear": DEBOUNCE_CLEAR},
            "balancing": {"mode": mode},
            "bus": {"response_timeout": 0.02},
            "lines": [{"name": f"l{i}", "port": p, "boards": BOARDS} for i, p in enumerate(paths)],
        },
    }
    cfg.write_text(dumps(config))
    return cfg


class Running:
    def __init__(self, daemon: BmsDaemon, spool: Spool, sim: RackSim) -> None:
        self.daemon, self.spool, self.sim = daemon, spool, sim

    @property
    def cycles(self) -> int:
        return int(self.daemon.status().get("cycles", 0))

    def rows(self, kind: str) -> list[dict[str, Any]]:
        return [json.loads(r.payload) for r in self.spool.peek(0, 100_000) if r.kind == kind]

    def alarms(self, alarm: str, state: str | None = None) -> list[dict[str, Any]]:
        return [
            a
            for a in self.rows("alarm")
            if a["alarm"] == alarm and (state is None or a["state"] == state)
        ]

    async def until(self, what: str, pred: Callable[[], bool], timeout: float = 10.0) -> int:
        """Wait for ``pred``; the daemon's cycle count when it first held."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return self.cycles
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}; alarms: {self.rows('alarm')[-5:]}")


@asynccontextmanager
async def running(tmp_path: Path, mode: str) -> AsyncIterator[Running]:
    spec = RackSpec(
        lines=2, boards_per_line=BOARDS, cells_per_board=CELLS, chemistry=Chemistry.NMC, seed=4
    )
    sim = RackSim(spec)
    async with RackServer(sim, speed=1.0) as server:
        config = load_config(write_config(tmp_path, server.paths, mode), env={})
        spool = Spool(tmp_path / "spool.sqlite", max_bytes=50_000_000)
        beats = Heartbeats()
        daemon = build(DaemonContext(config, AsyncSpool(spool), beats))
        for name, (_f, allowance) in daemon.loops().items():
            beats.register(f"bms.{name}", allowance)
        tasks = [asyncio.create_task(f()) for f, _a in daemon.loops().values()]
        try:
            yield Running(daemon, spool, sim)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await daemon.close()
            spool.close()


async def test_over_temperature_raised_once_cleared_once_with_hysteresis(tmp_path: Path) -> None:
    async with running(tmp_path, "advisory") as r:
        await r.until("ten cycles", lambda: r.cycles >= 10)
        assert r.rows("alarm") == []
        board = 1  # line l0, address 2: cells 15..28
        r.sim.set_overtemp(board, 27.5)  # 52.5 degC: above clear (50), below set (55)
        await asyncio.sleep(1.0)
        assert r.alarms("cell_ot") == [], "raised between the clear and set thresholds"
        start = r.cycles
        r.sim.set_overtemp(board, 40.0)  # 65 degC
        at = await r.until("cell_ot raised", lambda: len(r.alarms("cell_ot", "raised")) == CELLS)
        # Detectable after DEBOUNCE_SET cycles of readings above the limit; raised in that cycle
        # (one more for the sample in flight when the fault was injected).
        assert at - start <= DEBOUNCE_SET + 1, (start, at)
        raised = r.alarms("cell_ot", "raised")
        assert {a["point"] for a in raised} == {f"cell_{i:04d}" for i in range(15, 29)}
        assert {a["device"] for a in raised} == {"l0/2"}
        assert all(a["value"] > 55.0 for a in raised)
        r.sim.set_overtemp(board, 27.0)  # back inside the set limit, not below clear
        await asyncio.sleep(1.0)
        assert r.alarms("cell_ot", "cleared") == [], "cleared without passing the hysteresis"
        start = r.cycles
        r.sim.set_overtemp(board, 0.0)
        at = await r.until("cell_ot cleared", lambda: len(r.alarms("cell_ot", "cleared")) == CELLS)
        assert at - start <= DEBOUNCE_CLEAR + 1, (start, at)
        await asyncio.sleep(0.5)
        # Once each: no chatter while the condition holds.
        assert len(r.alarms("cell_ot", "raised")) == CELLS
        assert len(r.alarms("cell_ot", "cleared")) == CELLS


async def test_silent_board_alarm_others_keep_answering_and_summary(tmp_path: Path) -> None:
    async with running(tmp_path, "advisory") as r:
        await r.until("ten cycles", lambda: r.cycles >= 10)
        r.sim.set_silent(4)  # line l1, address 2
        start = r.cycles
        at = await r.until("board lost", lambda: bool(r.alarms("device_lost", "raised")))
        assert at - start <= 3 + 1  # board_lost_after = 3 cycles
        assert [a["device"] for a in r.alarms("device_lost")] == ["l1/2"]
        n0 = r.cycles
        await asyncio.sleep(1.0)
        # The other boards are still read every cycle: the silent one costs one timeout.
        assert r.cycles - n0 >= 7
        st = r.daemon.status()
        assert st["boards_silent"] == ["l1/2"]
        r.sim.set_silent(4, False)
        await r.until("board back", lambda: bool(r.alarms("device_lost", "cleared")))
        await r.until("a summary", lambda: len(r.rows("summary")) >= 2)
        body = r.rows("summary")[-1]
        truth = r.sim.soc
        assert body["device"] == "rack"
        assert body["cycles"] >= 5
        assert body["soc"]["min"] <= body["soc"]["mean"] <= body["soc"]["max"]
        v = body["voltage"]
        assert abs(v["spread"] - (v["max"] - v["min"])) < 2e-4
        assert 3.5 < v["min"] <= v["max"] < 4.0
        # Started from OCV at rest: within a few % of the truth.
        assert abs(body["soc"]["mean"] - float(np.mean(truth))) < 0.05
        assert body["balancing"] == {
            "mode": "advisory",
            "planned": body["bleeding"],
            "applied": 0,
        }


async def test_advisory_writes_nothing_active_writes_the_plan(tmp_path: Path) -> None:
    async with running(tmp_path / "adv", "advisory") as r:
        await r.until("a plan", lambda: r.daemon.status().get("string", {}).get("bleeding", 0) > 0)
        await asyncio.sleep(0.5)
        assert not r.sim.bal_mask.any()
        assert r.daemon.status()["balancing_writes"] == 0
    async with running(tmp_path / "act", "active") as r:
        await r.until("a plan", lambda: r.daemon.status().get("string", {}).get("bleeding", 0) > 0)
        await r.until(
            "the boards bleed as planned",
            lambda: (
                bool(r.sim.bal_mask.any())
                and r.sim.bal_mask.tolist() == r.daemon.status()["balancing_plan"]
            ),
        )
        assert (r.sim.bal_deadline > r.sim.t).all()  # every board's self-stop timer is running
        sim = r.sim
    assert not sim.bal_mask.any(), "closing the daemon must stop the bleeding"
