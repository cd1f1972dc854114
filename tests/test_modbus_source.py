"""Modbus TCP source against real peers: a pymodbus server and raw TCP servers that misbehave."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus.device import (
    DEFAULT_TCP_PORT,
    DeviceConnection,
    parse_device,
)
from drivers.modbus.exceptions import ModbusExceptionError, exception_name
from drivers.modbus.plan import ReadPlan, compile_plan
from drivers.modbus.source import ModbusTcpSource, poll_forever
from drivers.modbus.types import ByteOrder, RegisterPoint, Table
from drivers.modbus.types import DataType as PointType
from gateway.config.issues import IssueSink
from gateway.core.model import Frame, Quality
from tests.raw_tcp import Reply, raw_server

HOLDING = [1234, 0, 65535, 42, 7, 8, 9, 10]  # addresses 0..7
INPUT = [500, 501, 502, 503]  # addresses 10..13
COILS = [True, False, True, True, False, False, False, True]  # addresses 0..7


def _words(raw: bytes) -> list[int]:
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


# Typed values at holding 100..: f32 230.5, i16 -5, u32 123456789 low word first, "SDM630".
F32, I16, U32, TEXT = 230.5, -5, 123456789, "SDM630"
_u32 = _words(struct.pack(">I", U32))
TYPED = [
    *_words(struct.pack(">f", F32)),
    *_words(struct.pack(">h", I16)),
    _u32[1],
    _u32[0],
    *_words(TEXT.encode()),
]

SOURCE_LOGGERS = ("drivers.modbus",)


def plan_of(spans: list[tuple[Table, int, int]]) -> ReadPlan:
    """One u16 (or bool) point per address of each span; each span one request (no gaps merged)."""
    points = [
        RegisterPoint(
            f"{table.value}{address}",
            table,
            address,
            PointType.BOOL if table.is_bit else PointType.U16,
        )
        for table, start, count in spans
        for address in range(start, start + count)
    ]
    return compile_plan(points)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """A real pymodbus TCP server on loopback that the test can stop and start on one port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        device = SimDevice(
            id=1,
            simdata=(
                [SimData(0, values=COILS, datatype=DataType.BITS)],
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [
                    SimData(0, values=HOLDING, datatype=DataType.REGISTERS),
                    SimData(100, values=TYPED, datatype=DataType.REGISTERS),
                ],
                [SimData(10, values=INPUT, datatype=DataType.REGISTERS)],
            ),
        )
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None


@pytest.fixture
async def server() -> AsyncIterator[_Server]:
    srv = _Server(_free_port())
    await srv.start()
    yield srv
    await srv.stop()


def _device(port: int, *, timeout: float = 0.3, interval: float = 0.05) -> DeviceConnection:
    return DeviceConnection(
        name="meter1",
        transport="tcp",
        unit_id=1,
        poll_interval=interval,
        timeout=timeout,
        host="127.0.0.1",
        port=port,
    )


def _lines(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(SOURCE_LOGGERS) and r.levelno == level and text in r.getMessage()
    ]


async def _read_until(source: ModbusTcpSource, plan: Any, good: bool, limit: float = 3.0) -> Frame:
    """Poll until the frame is (not) all GOOD; bounded in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        frame = await source.read(plan)
        if bool((frame.quality == Quality.GOOD).all()) == good:
            return frame
        assert loop.time() < deadline, f"frame never became {'GOOD' if good else 'BAD'}"
        await asyncio.sleep(0.02)


async def test_reads_and_decodes_all_tables(server: _Server) -> None:
    plan = plan_of([(Table.HOLDING, 0, 8), (Table.INPUT, 10, 4), (Table.COIL, 0, 8)])
    source = ModbusTcpSource(_device(server.port))
    try:
        frame = await source.read(plan)
    finally:
        source.close()
    expected = [*HOLDING, *INPUT, *(int(c) for c in COILS)]
    np.testing.assert_array_equal(frame.values, np.array(expected, dtype=np.float64))
    assert (frame.quality == Quality.GOOD).all()
    assert frame.device == "meter1"
    assert source.health.last_success_ts == frame.ts


async def test_typed_points_and_strings_decode_like_struct(server: _Server) -> None:
    h = Table.HOLDING
    plan = compile_plan(
        [
            RegisterPoint("p", h, 100, PointType.F32, scale=0.5),
            RegisterPoint("q", h, 102, PointType.I16),
            RegisterPoint("e", h, 103, PointType.U32, order=ByteOrder.CDAB),
            RegisterPoint("model", h, 105, PointType.STRING, length=3),
        ]
    )
    assert len(plan.requests) == 1  # contiguous: one request, 8 registers
    source = ModbusTcpSource(_device(server.port))
    try:
        frame, strings = await source.read_decoded(plan)
    finally:
        source.close()
    np.testing.assert_array_equal(frame.values, [F32 * 0.5, I16, U32])
    assert (frame.quality == Quality.GOOD).all()
    assert strings == {"model": TEXT}


async def test_server_stop_gives_bad_and_one_line_restart_gives_one_recovery(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers.modbus")
    plan = plan_of([(Table.HOLDING, 0, 4)])
    source = ModbusTcpSource(_device(server.port), backoff_cap=0.2)
    try:
        assert (await source.read(plan)).quality.tolist() == [Quality.GOOD] * 4

        await server.stop()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        first = await source.read(plan)
        # The hang-up fails the request at once instead of waiting out the 0.3 s timeout.
        assert loop.time() - t0 < 0.2
        assert (first.quality == Quality.BAD).all()
        for _ in range(8):  # several failed polls, still one log line
            frame = await source.read(plan)
            assert (frame.quality == Quality.BAD).all()
            assert np.isnan(frame.values).all()  # never the last good value
            await asyncio.sleep(0.05)
        failed = _lines(caplog, logging.WARNING, "failed")
        assert len(failed) == 1, failed
        assert "meter1" in failed[0] and "holding 0..3" in failed[0]
        assert "connection to 127.0.0.1" in failed[0] and "lost" in failed[0]
        assert source.health.consecutive_failures >= 1

        await server.start()
        frame = await _read_until(source, plan, good=True)
        np.testing.assert_array_equal(frame.values, HOLDING[:4])
        recovered = _lines(caplog, logging.INFO, "recovered")
        assert len(recovered) == 1, recovered
        assert len(_lines(caplog, logging.WARNING, "failed")) == 1
    finally:
        source.close()


async def test_refused_connection_is_named(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="drivers.modbus")
    port = _free_port()  # nothing listens there
    source = ModbusTcpSource(_device(port))
    frame = await source.read(plan_of([(Table.HOLDING, 0, 2)]))
    source.close()
    assert (frame.quality == Quality.BAD).all()
    failed = _lines(caplog, logging.WARNING, "failed")
    assert len(failed) == 1
    assert f"connection refused by 127.0.0.1:{port}" in failed[0]


async def test_exception_response_is_named_and_only_its_points_are_bad(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers.modbus")
    # Holding 0..3 exists; holding 500..501 does not, so the server answers ILLEGAL DATA ADDRESS.
    plan = plan_of([(Table.HOLDING, 500, 2), (Table.HOLDING, 0, 4)])
    source = ModbusTcpSource(_device(server.port))
    try:
        frame = await source.read(plan)
        again = await source.read(plan)  # an answering device is not backed off
    finally:
        source.close()
    assert frame.quality.tolist() == [Quality.BAD] * 2 + [Quality.GOOD] * 4
    np.testing.assert_array_equal(frame.values[2:], HOLDING[:4])
    assert again.quality.tolist() == frame.quality.tolist()
    failed = _lines(caplog, logging.WARNING, "failed")
    assert len(failed) == 1
    assert "ILLEGAL DATA ADDRESS (0x02)" in failed[0] and "holding 500..501" in failed[0]


def test_exception_names_cover_the_spec_codes() -> None:
    assert exception_name(1) == "ILLEGAL FUNCTION (0x01)"
    assert exception_name(6) == "SERVER DEVICE BUSY (0x06)"
    assert exception_name(0x0B).startswith("GATEWAY TARGET")
    assert exception_name(0x42) == "UNKNOWN EXCEPTION (0x42)"
    assert ModbusExceptionError(2).answered and ModbusExceptionError(2).cause.startswith("ILLEGAL")


def _junk(_request: bytes) -> bytes:
    return b"\xde\xad\xbe\xef" * 4


def _short(request: bytes) -> bytes:
    # MBAP header promises 9 bytes of PDU, only 4 follow.
    return request[:2] + b"\x00\x00\x00\x09\x01\x03\x06\x00"


def _silent(_request: bytes) -> None:
    return None


@pytest.mark.parametrize(
    ("reply", "cause"),
    [(_junk, "garbled"), (_short, "garbled"), (_silent, "timeout")],
    ids=["junk", "short", "silent"],
)
async def test_misbehaving_peer_gives_bad_frame_without_crash(
    reply: Reply, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers.modbus")
    plan = plan_of([(Table.HOLDING, 0, 3), (Table.INPUT, 0, 2)])
    async with raw_server(reply) as port:
        source = ModbusTcpSource(_device(port, timeout=0.15))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        frame = await source.read(plan)
        elapsed = loop.time() - t0
        source.close()
    assert (frame.quality == Quality.BAD).all() and np.isnan(frame.values).all()
    # The second request is skipped once the first found the device unusable: one timeout.
    assert elapsed < 0.15 * 1.5 + 0.1
    failed = _lines(caplog, logging.WARNING, "failed")
    assert len(failed) == 1 and cause in failed[0], failed
    assert not source.health.due(loop.time() - 1.0)  # backed off


async def test_dead_device_is_backed_off_up_to_the_cap() -> None:
    port = _free_port()
    source = ModbusTcpSource(_device(port, interval=0.05), backoff_cap=0.4)
    plan = plan_of([(Table.HOLDING, 0, 1)])
    loop = asyncio.get_running_loop()
    waits = []
    for _ in range(6):
        frame = await source.read(plan)
        assert (frame.quality == Quality.BAD).all()
        waits.append(source.health.not_before - loop.time())
        # While backed off, a read is BAD at once and does not count as a new failure.
        count = source.health.consecutive_failures
        await source.read(plan)
        assert source.health.consecutive_failures == count
        await asyncio.sleep(max(0.0, source.health.not_before - loop.time()))
    source.close()
    assert source.health.consecutive_failures == 6
    # Delays double from the poll interval (jitter takes up to half) and stop at the cap.
    assert waits[0] <= 0.05
    assert all(w <= 0.4 for w in waits)
    assert max(waits[3:]) > 0.2


async def test_poll_forever_keeps_a_fixed_grid_and_skips_overrun_ticks(server: _Server) -> None:
    plan = plan_of([(Table.HOLDING, 0, 2)])
    source = ModbusTcpSource(_device(server.port, interval=0.1))
    loop = asyncio.get_running_loop()
    seen: list[float] = []
    start = loop.time()

    async def on_frame(frame: Frame) -> None:
        seen.append(loop.time() - start)
        assert (frame.quality == Quality.GOOD).all()
        if len(seen) == 3:
            await asyncio.sleep(0.25)  # overrun: ticks 3 and 4 must be skipped, not bursted

    task = asyncio.create_task(poll_forever(source, plan, 0.1, on_frame, stagger=0.0))
    await asyncio.sleep(1.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    source.close()
    ticks = [round(t / 0.1) for t in seen]
    # Every frame sits just after a grid point (no drift), ...
    assert all(0 <= t - k * 0.1 < 0.05 for t, k in zip(seen, ticks, strict=True)), seen
    # ... the overrun skipped ticks 3 and 4 rather than firing them late, and nothing repeats.
    assert ticks[:3] == [0, 1, 2] and ticks[3] == 5, ticks
    assert ticks == sorted(set(ticks)) and ticks[-1] >= 9


async def test_poll_forever_survives_a_broken_decoder_and_consumer(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers.modbus")

    class BrokenPlan:
        requests = plan_of([(Table.HOLDING, 0, 2)]).requests
        points = plan_of([(Table.HOLDING, 0, 2)]).points

        def decode_checked(self, blocks: Any) -> Any:
            raise RuntimeError("decoder bug")

    frames: list[Frame] = []

    def on_frame(frame: Frame) -> None:
        frames.append(frame)
        raise ValueError("consumer bug")

    source = ModbusTcpSource(_device(server.port, interval=0.05))
    task = asyncio.create_task(poll_forever(source, BrokenPlan(), 0.05, on_frame))
    await asyncio.sleep(0.4)
    assert not task.done()  # nothing escaped into the caller
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    source.close()
    assert len(frames) >= 5
    assert all((f.quality == Quality.BAD).all() for f in frames)
    assert len(_lines(caplog, logging.ERROR, "read failed unexpectedly")) == 1
    assert len(_lines(caplog, logging.ERROR, "frame consumer failed")) == 1


# --- connection config -------------------------------------------------------------------------


def _parse(table: dict[str, Any], **kw: Any) -> tuple[DeviceConnection | None, list[str]]:
    sink = IssueSink("gridgate.toml")
    conn = parse_device("m1", table, sink, "modbus.devices.m1", **kw)
    return conn, [str(i) for i in sink.issues]


def test_parse_tcp_device_with_defaults() -> None:
    conn, issues = _parse({"host": "10.0.0.5", "profile": "x"}, extra_keys={"profile"})
    assert issues == []
    assert conn == DeviceConnection(
        name="m1",
        transport="tcp",
        unit_id=1,
        poll_interval=1.0,
        timeout=1.0,
        host="10.0.0.5",
        port=DEFAULT_TCP_PORT,
    )


def test_parse_device_reports_every_problem_with_its_key() -> None:
    conn, issues = _parse(
        {
            "transport": "tcp",
            "host": "h",
            "port": 70000,
            "unit_id": 248,
            "poll_interval": 0,
            "timeout": -1,
            "retries": True,
            "bus": "rs485",
            "profile": "x",  # not consumed by the caller here: unknown
        }
    )
    assert conn is None
    text = "\n".join(issues)
    for key in ("port", "unit_id", "poll_interval", "timeout", "retries", "bus", "profile"):
        assert f"modbus.devices.m1.{key}:" in text, key
    assert all(i.startswith("gridgate.toml: ") for i in issues)
    assert len(issues) == 7


def test_parse_rtu_device_needs_an_existing_bus() -> None:
    conn, issues = _parse({"transport": "rtu", "bus": "line2", "unit_id": 3}, buses={"line1"})
    assert conn is None and len(issues) == 1 and "no serial bus 'line2'" in issues[0]
    conn, issues = _parse({"transport": "rtu", "bus": "line1", "unit_id": 3}, buses={"line1"})
    assert issues == [] and conn is not None
    assert conn.bus == "line1" and conn.timeout is None  # inherits the bus timeout
    conn, issues = _parse({"transport": "rtu", "unit_id": 0, "host": "x"})
    assert conn is None
    assert {i.split(": ")[1] for i in issues} == {
        "modbus.devices.m1.bus",
        "modbus.devices.m1.unit_id",
        "modbus.devices.m1.host",
    }


def test_parse_device_rejects_bad_transport_and_non_finite_times() -> None:
    conn, issues = _parse({"transport": "udp", "poll_interval": math.inf, "timeout": math.nan})
    assert conn is None
    assert any("transport" in i and '"tcp" or "rtu"' in i for i in issues)
    assert any("poll_interval" in i for i in issues) and any("timeout" in i for i in issues)
