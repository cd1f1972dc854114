"""Modbus RTU over a real pty: one bus owner, two live slaves and a dead one, inter-frame gaps.

The slave side of the pty is the serial port the bus opens; on the master side a small RTU
responder written here (its own CRC, not pymodbus's) answers units 1 and 2, ignores unit 3, and
timestamps every frame, so gaps and schedules are measured where a real slave would see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
import tty
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from drivers.modbus.bus import SerialBus
from drivers.modbus.device import (
    DeviceConnection,
    SerialBusSettings,
    default_inter_frame_gap,
    parse_bus,
    parse_buses,
)
from drivers.modbus.plan import ReadPlan, compile_plan
from drivers.modbus.source import ModbusRtuSource, poll_forever
from drivers.modbus.types import DataType, RegisterPoint, Table
from gateway.config.issues import IssueSink
from gateway.core.model import Frame, Quality

REGISTERS = {1: [101, 102, 103, 104], 2: [201, 202, 203, 204]}
DEAD = 3
GAP = 0.010  # configured inter-frame gap (s): large against pty jitter so it is measurable
TIMEOUT = 0.15
INTERVAL = 0.2


def crc16(frame: bytes) -> int:
    """Modbus RTU CRC (poly 0xA001 reflected, init 0xFFFF), bit by bit as the spec prints it."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<H", crc16(body))


def test_crc_matches_the_spec_example() -> None:
    # Modbus over serial line v1.02, 6.2.2: "02 07" -> CRC 0x1241, sent low byte first (41 12).
    assert with_crc(b"\x02\x07") == b"\x02\x07\x41\x12"


@dataclass
class Responder:
    """RTU slaves on the pty master: answers FC3 for the live units, never for the dead one."""

    fd: int
    requests: dict[int, list[float]] = field(default_factory=dict)  # unit -> arrival times
    gaps: list[float] = field(default_factory=list)  # our reply written -> next request seen
    after_dead: list[float] = field(default_factory=list)  # dead request -> next request
    bad_crc: int = 0
    _buf: bytes = b""
    _reply_end: float | None = None
    _dead_seen: float | None = None

    def on_readable(self) -> None:
        now = time.monotonic()
        try:
            self._buf += os.read(self.fd, 512)
        except BlockingIOError:
            return
        while len(self._buf) >= 8:  # every read request (FC 1..4) is 8 bytes
            frame, self._buf = self._buf[:8], self._buf[8:]
            if with_crc(frame[:6]) != frame:
                self.bad_crc += 1
                continue
            unit, fc, address, count = struct.unpack(">BBHH", frame[:6])
            self.requests.setdefault(unit, []).append(now)
            if self._reply_end is not None:
                self.gaps.append(now - self._reply_end)
            if self._dead_seen is not None:
                self.after_dead.append(now - self._dead_seen)
            self._reply_end = self._dead_seen = None
            if unit == DEAD or fc != 3:
                self._dead_seen = now
                continue
            regs = REGISTERS[unit][address : address + count]
            body = struct.pack(f">BBB{len(regs)}H", unit, fc, 2 * len(regs), *regs)
            os.write(self.fd, with_crc(body))
            self._reply_end = time.monotonic()


@contextlib.contextmanager
def _pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line discipline: bytes pass as on a wire
    os.set_blocking(master, False)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


@pytest.fixture
async def line() -> AsyncIterator[tuple[Responder, str]]:
    loop = asyncio.get_running_loop()
    with _pty() as (master, path):
        responder = Responder(master)
        loop.add_reader(master, responder.on_readable)
        try:
            yield responder, path
        finally:
            loop.remove_reader(master)


def _settings(path: str, gap: float = GAP) -> SerialBusSettings:
    return SerialBusSettings(
        "line1", path, baudrate=9600, parity="N", inter_frame_gap=gap, timeout=TIMEOUT
    )


def _slave(unit: int) -> DeviceConnection:
    return DeviceConnection(
        f"slave{unit}", "rtu", unit, poll_interval=INTERVAL, timeout=None, bus="line1"
    )


def _plan() -> ReadPlan:
    return compile_plan([RegisterPoint(f"r{a}", Table.HOLDING, a, DataType.U16) for a in range(4)])


async def test_live_slaves_keep_their_schedule_while_the_dead_one_is_backed_off(
    line: tuple[Responder, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers.modbus")
    responder, path = line
    bus = SerialBus(_settings(path))
    plan = _plan()
    sources = {u: ModbusRtuSource(_slave(u), bus, backoff_cap=1.0) for u in (1, 2, DEAD)}
    frames: dict[int, list[Frame]] = {u: [] for u in sources}
    run = 2.0
    tasks = [
        asyncio.create_task(
            poll_forever(src, plan, INTERVAL, lambda f, u=u: frames[u].append(f))  # type: ignore[misc]
        )
        for u, src in sources.items()
    ]
    await asyncio.sleep(run)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    bus.close()

    ticks = int(run / INTERVAL)  # 10
    assert responder.bad_crc == 0
    for unit in (1, 2):
        assert len(frames[unit]) >= ticks - 1, (unit, len(frames[unit]))
        for frame in frames[unit]:
            assert frame.quality.tolist() == [Quality.GOOD] * 4
            np.testing.assert_array_equal(frame.values, REGISTERS[unit])
        seen = np.diff(responder.requests[unit])
        # On schedule: one request per tick, delayed by at most one dead-slave timeout.
        assert len(responder.requests[unit]) >= ticks - 1
        assert seen.max() < INTERVAL + TIMEOUT + 0.1, seen  # two timeouts would be 0.5 s
    # The dead slave still yields a (BAD) frame every tick, but is asked far less often.
    assert len(frames[DEAD]) >= ticks - 1
    assert all((f.quality == Quality.BAD).all() and np.isnan(f.values).all() for f in frames[DEAD])
    dead_polls = len(responder.requests[DEAD])
    assert 2 <= dead_polls <= 6, dead_polls
    # Its silence held the line for one timeout (plus the gap), not more.
    assert min(responder.after_dead) >= TIMEOUT
    assert max(responder.after_dead) < TIMEOUT + GAP + 0.05
    # The inter-frame gap holds between the end of each reply and the next request.
    assert len(responder.gaps) >= 15
    assert min(responder.gaps) >= GAP - 0.0005, min(responder.gaps)
    failed = [r.getMessage() for r in caplog.records if "failed at" in r.getMessage()]
    assert len(failed) == 1 and "slave3" in failed[0] and "timeout" in failed[0], failed
    assert "(unit 3)" in failed[0] and "holding 0..3" in failed[0]


async def test_slaves_asking_at_once_are_serialised_with_the_gap(
    line: tuple[Responder, str],
) -> None:
    responder, path = line
    bus = SerialBus(_settings(path))
    plan = _plan()
    sources = [ModbusRtuSource(_slave(u), bus) for u in (1, 2, 1, 2, 1, 2)]
    frames = await asyncio.gather(*(s.read(plan) for s in sources))
    bus.close()
    for source, frame in zip(sources, frames, strict=True):
        np.testing.assert_array_equal(frame.values, REGISTERS[source.connection.unit_id])
    assert len(responder.gaps) == 5 and min(responder.gaps) >= GAP - 0.0005, responder.gaps


async def test_missing_port_is_bad_with_one_named_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="drivers.modbus")
    bus = SerialBus(_settings("/dev/ttyGRIDGATE-missing"))
    source = ModbusRtuSource(_slave(1), bus, backoff_cap=0.2)
    for _ in range(3):
        frame = await source.read(_plan())
        assert (frame.quality == Quality.BAD).all()
        await asyncio.sleep(0.25)
    bus.close()
    failed = [r.getMessage() for r in caplog.records if "failed at" in r.getMessage()]
    assert len(failed) == 1
    assert "cannot connect to serial port /dev/ttyGRIDGATE-missing" in failed[0]


# --- bus config --------------------------------------------------------------------------------


def test_default_gap_is_three_and_a_half_characters() -> None:
    assert default_inter_frame_gap(9600, 8, "E", 1) == pytest.approx(3.5 * 11 / 9600)
    assert default_inter_frame_gap(19200, 8, "N", 1) == pytest.approx(3.5 * 10 / 19200)
    assert default_inter_frame_gap(38400, 8, "E", 1) == 0.00175
    assert default_inter_frame_gap(115200, 8, "N", 2) == 0.00175


def test_parse_bus_defaults_and_every_error() -> None:
    sink = IssueSink("gridgate.toml")
    bus = parse_bus("line1", {"port": "/dev/ttyUSB0", "baudrate": 9600}, sink, "modbus.buses.line1")
    assert sink.issues == []
    assert bus == SerialBusSettings(
        "line1", "/dev/ttyUSB0", 9600, "E", 1, 8, pytest.approx(3.5 * 11 / 9600), 1.0
    )
    bad = {
        "port": "",
        "baudrate": 9601,
        "parity": "X",
        "stopbits": 3,
        "bytesize": 6,
        "inter_frame_gap": 0,
        "timeout": "1",
        "flow": "rts",
    }
    assert parse_bus("line2", bad, sink, "modbus.buses.line2") is None
    keys = sorted(i.path.rsplit(".", 1)[1] for i in sink.issues)
    assert keys == sorted(bad)
    assert all(i.file == "gridgate.toml" for i in sink.issues)


def test_parse_buses_keeps_only_the_valid_ones() -> None:
    sink = IssueSink("gridgate.toml")
    buses = parse_buses(
        {"a": {"port": "/dev/ttyS0"}, "b": {"baudrate": 9600}, "c": 5}, sink, "modbus.buses"
    )
    assert list(buses) == ["a"]
    assert sorted(i.path for i in sink.issues) == ["modbus.buses.b.port", "modbus.buses.c"]
