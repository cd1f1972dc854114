"""Register codec: the C decoder against the numpy reference, the encoder, a real server.

C and reference must agree bit for bit on every input (NaN included, as both write one
canonical NaN with quality BAD); the encoder must invert both; and values written into a real
pymodbus server must come back through a compiled plan unchanged.
"""

from __future__ import annotations

import math
import struct
from collections.abc import AsyncIterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from drivers.modbus.codec import (
    build_specs,
    decode_text,
    encode_point,
    encode_registers,
    encode_text,
    reference_decode,
)
from drivers.modbus.plan import compile_plan
from drivers.modbus.types import ByteOrder, DataType, RegisterPoint, Table
from gateway.core.errors import NativeError
from gateway.core.model import Quality
from gateway.native.decode import SPEC_DTYPE, decode

NUMERIC = [t for t in DataType if t not in (DataType.STRING, DataType.BOOL)]
INT_RANGES = {
    DataType.U16: (0, 2**16 - 1),
    DataType.I16: (-(2**15), 2**15 - 1),
    DataType.U32: (0, 2**32 - 1),
    DataType.I32: (-(2**31), 2**31 - 1),
    DataType.U64: (0, 2**64 - 1),
    DataType.I64: (-(2**63), 2**63 - 1),
    DataType.BIT: (0, 1),
}


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality of float64 arrays (NaN == NaN only with the same payload)."""
    return a.shape == b.shape and bool(np.array_equal(a.view(np.uint64), b.view(np.uint64)))


def raw_values(dtype: DataType) -> st.SearchStrategy[float | int]:
    if dtype is DataType.F32:
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    if dtype is DataType.F64:
        return st.floats(allow_nan=True, allow_infinity=True)
    lo, hi = INT_RANGES[dtype]
    return st.integers(lo, hi)


@st.composite
def encoded_points(draw: st.DrawFn) -> tuple[RegisterPoint, float | int]:
    dtype = draw(st.sampled_from(NUMERIC))
    order = draw(st.sampled_from(list(ByteOrder)))
    bit = draw(st.integers(0, 15)) if dtype is DataType.BIT else 0
    return RegisterPoint("p", Table.HOLDING, 0, dtype, order, bit=bit), draw(raw_values(dtype))


@settings(max_examples=200, deadline=None)
@given(st.lists(encoded_points(), min_size=1, max_size=40))
def test_every_type_and_order_round_trips_through_c_and_reference(
    cases: list[tuple[RegisterPoint, float | int]],
) -> None:
    words: list[int] = []
    starts: list[int] = []
    for point, raw in cases:
        starts.append(len(words))
        words.extend(encode_point(point, float(raw) if isinstance(raw, float) else raw))
    regs = np.array(words, dtype=np.uint16)
    specs = build_specs([p for p, _ in cases], starts)
    values, quality = decode(regs, specs)
    ref_values, ref_quality = reference_decode(regs, specs)
    assert same(values, ref_values) and np.array_equal(quality, ref_quality)
    for (point, raw), value, q in zip(cases, values, quality, strict=True):
        if isinstance(raw, float) and not math.isfinite(raw):
            assert q == Quality.BAD and math.isnan(value)
        else:
            assert q == Quality.GOOD and value == float(raw), (point, raw, value)


@settings(max_examples=150, deadline=None)
@given(
    regs=st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=64),
    data=st.data(),
)
def test_c_equals_reference_on_arbitrary_registers_and_scaling(
    regs: list[int], data: st.DataObject
) -> None:
    # Garbage registers cover what the encoder never writes: NaN payloads, subnormals, -0.0.
    n = data.draw(st.integers(1, 30))
    specs = np.zeros(n, dtype=SPEC_DTYPE)
    for i in range(n):
        dtype = data.draw(st.sampled_from([*NUMERIC, DataType.BOOL]))
        specs[i] = (
            data.draw(st.integers(0, len(regs) - dtype.words)),
            int(dtype),
            data.draw(st.integers(0, 3)),
            data.draw(st.integers(0, 15)) if dtype is DataType.BIT else 0,
            0,
            data.draw(st.floats(allow_nan=False, allow_infinity=True)),
            data.draw(st.floats(allow_nan=False, allow_infinity=False, width=32)),
        )
    array = np.array(regs, dtype=np.uint16)
    values, quality = decode(array, specs)
    ref_values, ref_quality = reference_decode(array, specs)
    assert same(values, ref_values)
    assert np.array_equal(quality, ref_quality)
    assert np.array_equal(quality == Quality.BAD, np.isnan(values))


# Hand-written wire images of known values: the semantics, independent of the encoder.
KNOWN = [
    (DataType.F32, ByteOrder.ABCD, [0x3F80, 0x0000], 1.0),
    (DataType.F32, ByteOrder.CDAB, [0x0000, 0x3F80], 1.0),
    (DataType.F32, ByteOrder.BADC, [0x803F, 0x0000], 1.0),
    (DataType.F32, ByteOrder.DCBA, [0x0000, 0x803F], 1.0),
    (DataType.U32, ByteOrder.ABCD, [0x0102, 0x0304], 0x01020304),
    (DataType.U32, ByteOrder.DCBA, [0x0403, 0x0201], 0x01020304),
    (DataType.I16, ByteOrder.ABCD, [0xFFFE], -2),
    (DataType.I16, ByteOrder.CDAB, [0xFFFE], -2),  # one word: no word order
    (DataType.I16, ByteOrder.BADC, [0xFEFF], -2),
    (DataType.U64, ByteOrder.CDAB, [0x0708, 0x0506, 0x0304, 0x0102], 0x0102030405060708),
    (DataType.I64, ByteOrder.ABCD, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], -1),
    (DataType.F64, ByteOrder.ABCD, list(struct.unpack(">4H", struct.pack(">d", -2.5))), -2.5),
    (DataType.F64, ByteOrder.BADC, list(struct.unpack("<4H", struct.pack(">d", -2.5))), -2.5),
]


@pytest.mark.parametrize(("dtype", "order", "words", "value"), KNOWN)
def test_known_wire_images(
    dtype: DataType, order: ByteOrder, words: list[int], value: float
) -> None:
    point = RegisterPoint("p", Table.INPUT, 0, dtype, order)
    assert encode_point(point, value) == words
    specs = build_specs([point], [0])
    for decoder in (decode, reference_decode):
        values, quality = decoder(np.array(words, dtype=np.uint16), specs)
        assert values[0] == float(value) and quality[0] == Quality.GOOD


def test_bit_points_read_the_register_after_the_byte_swap() -> None:
    regs = np.array([0x8001], dtype=np.uint16)
    points = [
        RegisterPoint("b0", Table.HOLDING, 0, DataType.BIT, ByteOrder.ABCD, bit=0),
        RegisterPoint("b15", Table.HOLDING, 0, DataType.BIT, ByteOrder.ABCD, bit=15),
        RegisterPoint("b1", Table.HOLDING, 0, DataType.BIT, ByteOrder.ABCD, bit=1),
        RegisterPoint("s7", Table.HOLDING, 0, DataType.BIT, ByteOrder.BADC, bit=7),
        RegisterPoint("s8", Table.HOLDING, 0, DataType.BIT, ByteOrder.BADC, bit=8),
    ]
    values, _ = decode(regs, build_specs(points, [0] * len(points)))
    assert values.tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert encode_registers(points[:2], {"b0": 1.0, "b15": 1.0})[Table.HOLDING] == {0: 0x8001}


def test_scale_and_offset_apply_and_invert() -> None:
    point = RegisterPoint("t", Table.INPUT, 0, DataType.I16, scale=0.1, offset=-40.0)
    words = encode_point(point, 21.5)
    assert words == [615]
    values, _ = decode(np.array(words, dtype=np.uint16), build_specs([point], [0]))
    assert values[0] == pytest.approx(21.5)
    with pytest.raises(ValueError, match="does not fit"):
        encode_point(point, 10_000.0)
    with pytest.raises(ValueError, match="not 0 or 1"):
        encode_point(RegisterPoint("c", Table.COIL, 0, DataType.BOOL), 2.0)


def test_specs_outside_the_block_are_refused_before_anything_is_written() -> None:
    regs = np.zeros(3, dtype=np.uint16)
    point_ok = RegisterPoint("a", Table.HOLDING, 0, DataType.U16)
    point_far = RegisterPoint("b", Table.HOLDING, 0, DataType.F32)
    specs = build_specs([point_ok, point_far], [0, 2])  # f32 at 2 needs registers 2..3
    with pytest.raises(NativeError, match="GG_EINVAL"):
        decode(regs, specs)
    with pytest.raises(ValueError, match="beyond"):
        reference_decode(regs, specs)
    bad_type = build_specs([point_ok], [0])
    bad_type["type"] = 42
    with pytest.raises(NativeError):
        decode(regs, bad_type)
    with pytest.raises(ValueError):
        reference_decode(regs, bad_type)


@given(text=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=12),
       order=st.sampled_from(list(ByteOrder)))  # fmt: skip
def test_strings_round_trip(text: str, order: ByteOrder) -> None:
    point = RegisterPoint("s", Table.HOLDING, 0, DataType.STRING, order, length=6)
    words = encode_text(point, text)
    assert len(words) == 6
    assert decode_text(words, order) == text


def test_string_byte_order_and_padding() -> None:
    assert decode_text([0x4142, 0x4300], ByteOrder.ABCD) == "ABC"
    assert decode_text([0x4241, 0x0043], ByteOrder.BADC) == "ABC"
    assert decode_text([0x4142, 0x2020], ByteOrder.ABCD) == "AB"


# ---- a real pymodbus server ---------------------------------------------------------------

SERVER_VALUES: dict[DataType, float] = {
    DataType.U16: 51234.0,
    DataType.I16: -1234.0,
    DataType.U32: 4_000_000_001.0,
    DataType.I32: -2_000_000_001.0,
    DataType.U64: float(2**63 + 2**12),
    DataType.I64: float(-(2**62) - 2**11),
    DataType.F32: 230.125,
    DataType.F64: -0.1,
    DataType.BIT: 1.0,
}


def server_points() -> tuple[list[RegisterPoint], dict[str, float | str]]:
    points: list[RegisterPoint] = []
    values: dict[str, float | str] = {}
    for table in (Table.HOLDING, Table.INPUT):
        address = 3 if table is Table.HOLDING else 0
        for dtype, value in SERVER_VALUES.items():
            for order in ByteOrder:
                name = f"{table.value}_{dtype.label}_{order.name}"
                point = RegisterPoint(name, table, address, dtype, order, bit=order * 4 + 1)
                points.append(point)
                values[name] = value
                address = point.end + (1 if dtype is DataType.F32 else 0)  # some gaps
        text = RegisterPoint(f"{table.value}_model", table, address, DataType.STRING, length=5)
        points.append(text)
        values[text.name] = "SDM630-M"
    for table in (Table.COIL, Table.DISCRETE):
        for i in range(21):
            name = f"{table.value}_{i}"
            points.append(RegisterPoint(name, table, 7 + i * 3, DataType.BOOL))
            values[name] = float(i % 2)
    return points, values


def sim_block(cells: dict[int, int], bits: bool) -> list[SimData]:
    size = max(cells) + 1
    if bits:
        return [
            SimData(0, values=[bool(cells.get(a, 0)) for a in range(size)], datatype=SimType.BITS)
        ]
    return [SimData(0, values=[cells.get(a, 0) for a in range(size)], datatype=SimType.REGISTERS)]


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[RegisterPoint], dict[str, float | str]]]:
    points, values = server_points()
    cells = encode_registers(points, values)
    device = SimDevice(
        id=7,
        simdata=(
            sim_block(cells[Table.COIL], bits=True),
            sim_block(cells[Table.DISCRETE], bits=True),
            sim_block(cells[Table.HOLDING], bits=False),
            sim_block(cells[Table.INPUT], bits=False),
        ),
    )
    srv = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await srv.serve_forever(background=True)
    try:
        port = srv.transport.sockets[0].getsockname()[1]
        yield port, points, values
    finally:
        await srv.shutdown()


@pytest.mark.parametrize("max_gap", [0, 4])
async def test_pymodbus_server_round_trip(
    server: tuple[int, list[RegisterPoint], dict[str, float | str]], max_gap: int
) -> None:
    port, points, truth = server
    plan = compile_plan(points, max_gap=max_gap, max_registers=40, max_bits=16)
    assert len(plan.requests) > 4  # several requests per table: the merge is exercised
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    try:
        blocks = []
        for r in plan.requests:
            read = {
                Table.COIL: client.read_coils,
                Table.DISCRETE: client.read_discrete_inputs,
                Table.HOLDING: client.read_holding_registers,
                Table.INPUT: client.read_input_registers,
            }[r.table]
            response = await read(r.address, count=r.count, device_id=7)
            assert not response.isError(), (r, response)
            if r.table.is_bit:
                blocks.append(np.array(response.bits[: r.count], dtype=np.uint8))
            else:
                blocks.append(np.array(response.registers, dtype=np.uint16))
    finally:
        client.close()
    values, quality, strings = plan.decode(blocks)
    assert (quality == Quality.GOOD).all()
    expected = np.array([truth[s.name] for s in plan.points], dtype=np.float64)
    expected_f32 = expected.astype(np.float32).astype(np.float64)  # f32 points carry f32 precision
    is_f32 = np.array([p.type is DataType.F32 for p in plan.register_points])
    assert same(values, np.where(is_f32, expected_f32, expected))
    assert strings == {name: truth[name] for name in plan.strings}
