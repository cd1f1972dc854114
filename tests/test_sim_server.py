"""The grid simulator serves the feeder model's values over real Modbus TCP, with faults.

Every read goes through a real pymodbus client on loopback. Registers are decoded here with plain
``struct`` (not through the driver's codec), and compared with an independent FeederModel of the
same seed: float32 values must match the model's values rounded to float32 exactly.
"""

from __future__ import annotations

import asyncio
import signal
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import numpy as np
import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from drivers.modbus.types import ByteOrder, DataType, RegisterPoint, Table
from gateway.core.errors import ConfigError
from gateway.sim.feeder import FeederModel
from gateway.sim.grid_server import (
    GridSimulator,
    OfflineReply,
    SimMeter,
    default_meters,
    load_meter,
)

START = datetime(2024, 6, 21, 11, 0, tzinfo=UTC).timestamp()
SEED = 21


class FakeClock:
    """Wall time the test moves by hand, so simulated time is known exactly."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client_factory() -> AsyncIterator[Callable[[int, float], AsyncModbusTcpClient]]:
    clients: list[AsyncModbusTcpClient] = []

    def make(port: int, timeout: float = 1.0) -> AsyncModbusTcpClient:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=timeout, retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


async def started(sim: GridSimulator) -> tuple[GridSimulator, int]:
    return sim, await sim.start()


def f32(regs: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", regs[0], regs[1]))[0])


def decode(point: RegisterPoint, regs: list[int]) -> float:
    """Independent decoder for the types the shipped meter profiles use."""
    words = list(regs)
    if point.order.swaps_words:
        words.reverse()
    raw = struct.pack(">" + "H" * len(words), *words)
    if point.order.swaps_bytes:
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    fmt = {DataType.F32: ">f", DataType.F64: ">d", DataType.I32: ">i", DataType.U32: ">I"}
    fmt |= {DataType.I16: ">h", DataType.U16: ">H", DataType.I64: ">q", DataType.U64: ">Q"}
    return float(struct.unpack(fmt[point.type], raw)[0]) * point.scale + point.offset


async def read_point(client: AsyncModbusTcpClient, unit: int, point: RegisterPoint) -> float:
    read = (
        client.read_input_registers if point.table is Table.INPUT else client.read_holding_registers
    )
    response = await read(point.address, count=point.count, device_id=unit)
    assert not response.isError(), f"{point.name}: {response}"
    return decode(point, response.registers)


# ---- values -------------------------------------------------------------------------------------


async def test_serves_every_profile_point_the_model_computes(client_factory) -> None:
    model = FeederModel(SEED, START)
    sim, port = await started(GridSimulator("127.0.0.1", 0, default_meters(model), model))
    try:
        reference = FeederModel(SEED, START).step(START)  # the first step: counters unchanged
        client = client_factory(port)
        await client.connect()
        served = 0
        for meter in default_meters(model):
            assert meter.points, "eastron_sdm630 has points"
            for point in meter.points:
                assert point.type is DataType.F32 and point.order is ByteOrder.ABCD
                value = await read_point(client, meter.unit_id, point)
                if point.name in reference[meter.name]:
                    expected = float(np.float32(reference[meter.name][point.name]))
                    assert value == expected, f"{meter.name}.{point.name}"
                    served += 1
                else:
                    assert value == 0.0, f"{meter.name}.{point.name} is not modelled"
        # Today the model computes all 35 SDM630 points; points added to the profile later read 0.
        assert served >= 4 * 35
        # Sanity of what a technician would see: a plausible LV voltage on the head meter.
        head = reference["head"]
        assert 225.0 < head["voltage_l1"] < 245.0
    finally:
        await sim.stop()


async def test_block_read_matches_the_model(client_factory) -> None:
    """One 76-register request (what a read plan sends), decoded with struct."""
    model = FeederModel(SEED, START)
    sim, port = await started(GridSimulator("127.0.0.1", 0, default_meters(model), model))
    try:
        client = client_factory(port)
        await client.connect()
        response = await client.read_input_registers(0, count=80, device_id=4)
        assert not response.isError()
        regs = response.registers
        ref = FeederModel(SEED, START).step(START)["cab3"]
        names = ["voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2"]
        for k, name in enumerate(names):
            assert f32(regs[2 * k : 2 * k + 2]) == float(np.float32(ref[name]))
        assert f32(regs[52:54]) == float(np.float32(ref["power_total"]))  # 30053
        assert f32(regs[70:72]) == float(np.float32(ref["frequency"]))  # 30071
        assert f32(regs[72:74]) == float(np.float32(ref["energy_import"]))  # 30073
        assert regs[36:42] == [0] * 6  # a gap in the SDM630 map reads as zeros
    finally:
        await sim.stop()


async def test_janitza_profile_with_scaled_energy(client_factory) -> None:
    model = FeederModel(SEED, START)
    meters = default_meters(model, profile="janitza_umg604")
    sim, port = await started(GridSimulator("127.0.0.1", 0, meters, model))
    try:
        client = client_factory(port)
        await client.connect()
        ref = FeederModel(SEED, START).step(START)
        checked = 0
        for meter in meters:
            for point in meter.points:
                if point.name not in ref[meter.name]:
                    continue
                value = await read_point(client, meter.unit_id, point)
                expected = ref[meter.name][point.name]
                # float32 of the raw (unscaled) value: 2^-24 relative, plus the scale's rounding.
                assert value == pytest.approx(expected, rel=2e-7, abs=1e-9), point.name
                checked += 1
        assert checked >= 4 * 20
    finally:
        await sim.stop()


async def test_registers_follow_simulated_time_with_speed(client_factory) -> None:
    clock = FakeClock()
    model = FeederModel(SEED, START)
    sim, port = await started(
        GridSimulator(
            "127.0.0.1", 0, default_meters(model), model, speed=60.0, interval=0.02, clock=clock
        )
    )
    try:
        client = client_factory(port)
        await client.connect()
        clock.now += 90.0  # 90 wall seconds at 60x: one and a half simulated hours
        target = START + 90.0 * 60.0
        for _ in range(200):
            if sim.last_t == target:
                break
            await asyncio.sleep(0.01)
        assert sim.last_t == target
        independent = FeederModel(SEED, START)
        independent.step(START)
        expected = independent.step(target)["head"]
        response = await client.read_input_registers(0, count=2, device_id=1)
        assert f32(response.registers) == float(np.float32(expected["voltage_l1"]))
        response = await client.read_input_registers(52, count=2, device_id=1)
        assert f32(response.registers) == float(np.float32(expected["power_total"]))
        response = await client.read_input_registers(72, count=4, device_id=1)
        energy_import = f32(response.registers[:2])
        energy_export = f32(response.registers[2:])
        # The counters moved by the integral over 90 simulated minutes (midday: the feeder
        # exports), and the simulator's fine steps agree with a two-step reference to 2 %.
        first = FeederModel(SEED, START).step(START)["head"]
        moved = (energy_import - first["energy_import"]) + (energy_export - first["energy_export"])
        reference_moved = (expected["energy_import"] - first["energy_import"]) + (
            expected["energy_export"] - first["energy_export"]
        )
        assert moved > 1.0
        assert moved == pytest.approx(reference_moved, rel=0.02)
    finally:
        await sim.stop()


# ---- faults -------------------------------------------------------------------------------------


async def test_offline_meter_gets_gateway_exception_others_answer(client_factory) -> None:
    model = FeederModel(SEED, START)
    sim, port = await started(GridSimulator("127.0.0.1", 0, default_meters(model), model))
    try:
        client = client_factory(port)
        await client.connect()
        sim.set_offline("cab2", True)
        response = await client.read_input_registers(0, count=2, device_id=3)
        assert response.isError()
        assert response.exception_code == 0x0B  # GATEWAY TARGET DEVICE FAILED TO RESPOND
        ok = await client.read_input_registers(0, count=2, device_id=2)
        assert not ok.isError() and 200.0 < f32(ok.registers) < 260.0
        sim.set_offline("cab2", False)
        back = await client.read_input_registers(0, count=2, device_id=3)
        assert not back.isError() and 200.0 < f32(back.registers) < 260.0
    finally:
        await sim.stop()


async def test_silent_offline_meter_times_out(client_factory) -> None:
    model = FeederModel(SEED, START)
    sim = GridSimulator(
        "127.0.0.1", 0, default_meters(model), model, offline_reply=OfflineReply.SILENT
    )
    port = await sim.start()
    try:
        client = client_factory(port, 0.3)
        await client.connect()
        sim.set_offline("head", True)
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0, count=2, device_id=1)
        assert loop.time() - began >= 0.25  # it waited for an answer that never came
        sim.set_offline("head", False)
        fresh = client_factory(port, 1.0)
        await fresh.connect()
        back = await fresh.read_input_registers(0, count=2, device_id=1)
        assert not back.isError() and 200.0 < f32(back.registers) < 260.0
    finally:
        await sim.stop()


async def test_injected_exception_and_unknown_unit(client_factory) -> None:
    model = FeederModel(SEED, START)
    sim, port = await started(GridSimulator("127.0.0.1", 0, default_meters(model), model))
    try:
        client = client_factory(port)
        await client.connect()
        sim.set_exception("cab1", 0x04)
        response = await client.read_input_registers(0, count=2, device_id=2)
        assert response.isError() and response.exception_code == 0x04
        sim.set_exception("cab1", None)
        assert not (await client.read_input_registers(0, count=2, device_id=2)).isError()
        unknown = await client.read_input_registers(0, count=2, device_id=77)
        assert unknown.isError() and unknown.exception_code == 0x0A  # GATEWAY PATH UNAVAILABLE
        past_map = await client.read_input_registers(1000, count=2, device_id=1)
        assert past_map.isError() and past_map.exception_code == 0x02  # ILLEGAL DATA ADDRESS
        write = await client.write_register(0, 1, device_id=1)
        assert write.isError()
        with pytest.raises(KeyError, match="nope"):
            sim.set_offline("nope", True)
        with pytest.raises(ValueError):
            sim.set_exception("cab1", 0x42)
    finally:
        await sim.stop()


async def test_stop_closes_the_port(client_factory) -> None:
    model = FeederModel(SEED, START)
    sim, port = await started(GridSimulator("127.0.0.1", 0, default_meters(model), model))
    await sim.stop()
    client = client_factory(port, 0.5)
    assert not await client.connect()


def test_meter_config_errors_are_collected() -> None:
    with pytest.raises(ConfigError) as err:
        load_meter("head", 300, profile="no_such_meter")
    text = str(err.value)
    assert "head.unit_id: must be 1..247" in text
    assert "head.profile: unknown profile 'no_such_meter'" in text
    model = FeederModel(SEED, START)
    meter = load_meter("head", 1)
    with pytest.raises(ValueError, match="unique"):
        GridSimulator("127.0.0.1", 0, [meter, meter], model)
    with pytest.raises(ValueError, match="no meter"):
        GridSimulator("127.0.0.1", 0, [SimMeter("cab9", 2, meter.points)], model)


# ---- command line -------------------------------------------------------------------------------


async def test_command_line_serves_and_exits_cleanly_on_sigterm(client_factory) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.sim.grid_server",
        "--port",
        "0",
        "--seed",
        "5",
        "--start",
        "2024-06-21T12:00:00+00:00",
        "--speed",
        "60",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20.0)).decode()
        assert line.startswith("listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        client = client_factory(port)
        await client.connect()
        response = await client.read_input_registers(0, count=2, device_id=1)
        assert not response.isError()
        expected = FeederModel(5, datetime(2024, 6, 21, 12, tzinfo=UTC).timestamp())
        # At 60x the served instant is a little after the start: compare loosely.
        head = expected.step(expected.start)["head"]["voltage_l1"]
        assert f32(response.registers) == pytest.approx(head, abs=3.0)
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10.0) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_port_in_use_is_an_os_error() -> None:
    model = FeederModel(SEED, START)
    first = GridSimulator("127.0.0.1", 0, default_meters(model), model)
    port = await first.start()
    try:
        second = GridSimulator("127.0.0.1", port, default_meters(model), model)
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            await second.start()
    finally:
        await first.stop()
