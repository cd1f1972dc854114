"""The grid daemon in-process against a meter that answers with values that cannot be readings:
NaN on every point is a BAD value with its reason, not a lost meter; 3e38 V is BAD, not GOOD."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.core.notify import Heartbeats
from gateway.core.runtime import DaemonContext
from gateway.grid.daemon import GridDaemon, build
from gateway.sim.toml_text import dumps
from gateway.spool.store import AsyncSpool, Spool
from tests.raw_tcp import raw_server

N_POINTS = 4


def _f32(value: float) -> list[int]:
    raw = struct.pack(">f", value)
    return [int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")]


class Meter:
    """A raw Modbus TCP peer answering every holding read from ``values`` (f32, ABCD)."""

    def __init__(self) -> None:
        self.values = [230.0] * N_POINTS
        self.requests = 0

    def reply(self, request: bytes) -> bytes:
        self.requests += 1
        start, count = struct.unpack(">HH", request[8:12])
        regs = [w for v in self.values for w in _f32(v)][start : start + count]
        pdu = bytes([request[7], 2 * len(regs)]) + b"".join(struct.pack(">H", r) for r in regs)
        return request[:2] + b"\0\0" + struct.pack(">H", len(pdu) + 1) + request[6:7] + pdu


def write_config(tmp_path: Path, port: int) -> Path:
    points = [
        {
            "name": f"voltage_l{i + 1}",
            "address": 2 * i,
            "type": "f32",
            "unit": "V",
            "valid_min": 0.0,
            "valid_max": 1000.0,
        }
        for i in range(N_POINTS)
    ]
    config = {
        "gateway": {"site": "s", "id": "g", "state_dir": str(tmp_path / "state")},
        "grid": {
            "window": 1.0,
            "meters": {
                "m1": {
                    "transport": "tcp",
                    "host": "127.0.0.1",
                    "port": port,
                    "poll_interval": 0.1,  # the lowest a config may set
                    "timeout": 0.2,
                    "points": points,
                }
            },
        },
    }
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(dumps(config))
    return cfg


@contextlib.asynccontextmanager
async def running(tmp_path: Path, port: int) -> AsyncIterator[tuple[GridDaemon, Spool]]:
    config = load_config(write_config(tmp_path, port), env={})
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=50_000_000)
    beats = Heartbeats()
    daemon = build(DaemonContext(config, AsyncSpool(spool), beats))
    loops = daemon.loops()
    for name, (_f, allowance) in loops.items():
        beats.register(f"grid.{name}", allowance)
    tasks = [asyncio.create_task(f()) for f, _a in loops.values()]
    try:
        yield daemon, spool
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await daemon.close()
        spool.close()


def alarms(spool: Spool) -> list[dict[str, Any]]:
    return [json.loads(r.payload) for r in spool.peek(0, 100_000) if r.kind == "alarm"]


async def until(what: str, pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _meter_status(daemon: GridDaemon) -> dict[str, Any]:
    status: dict[str, Any] = daemon.status()["meters"]["m1"]
    return status


async def test_nan_on_every_point_is_bad_values_not_a_lost_meter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    meter = Meter()
    async with raw_server(meter.reply) as port, running(tmp_path, port) as (daemon, spool):
        await until("a GOOD poll", lambda: _meter_status(daemon)["points_good"] == N_POINTS)
        meter.values = [float("nan")] * N_POINTS
        seen = meter.requests
        await until("20 NaN polls", lambda: meter.requests >= seen + 20)
        status = _meter_status(daemon)
        assert status["points_bad"] == N_POINTS and status["state"] == "ok"
        assert [a for a in alarms(spool) if a["alarm"] == "device_lost"] == []
        meter.values = [230.0] * N_POINTS
        await until("GOOD again", lambda: _meter_status(daemon)["points_good"] == N_POINTS)
        meter.values = [230.0, 3e38, 231.0, 232.0]
        await until("3e38 V polled", lambda: _meter_status(daemon)["points_good"] == 3)
        values = _meter_status(daemon)["values"]
        assert values["voltage_l2"][:2] == [None, "BAD"]
        assert values["voltage_l1"][:2] == [230.0, "GOOD"]
        meter.values = [230.0] * N_POINTS
        await until("GOOD again", lambda: _meter_status(daemon)["points_good"] == N_POINTS)
        assert alarms(spool) == []
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("drivers.modbus")]
    assert len(lines) == 4, lines  # each episode: one line when it starts, one when it ends
    assert "m1: 4 value(s) BAD: voltage_l1: not a finite number" in lines[0]
    assert "m1: 1 value(s) BAD: voltage_l2: 3e+38 V outside the plausible range 0..1000" in lines[2]
    assert "plausible again" in lines[1] and "plausible again" in lines[3]
