"""Read plans: request merging properties, failure isolation, and map validation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.codec import encode_registers
from drivers.modbus.plan import ReadPlan, compile_plan
from drivers.modbus.regmap import parse_register_map
from drivers.modbus.types import ByteOrder, DataType, RegisterPoint, Table
from gateway.config.issues import IssueSink
from gateway.core.model import Quality

REGISTER_TYPES = [t for t in DataType if t not in (DataType.BOOL, DataType.STRING)]


@st.composite
def register_maps(draw: st.DrawFn) -> list[RegisterPoint]:
    """Non-overlapping points over all four tables (bit points may share a register)."""
    points: list[RegisterPoint] = []
    for table in Table:
        address = draw(st.integers(0, 300))
        last_bit_reg: tuple[int, set[int]] | None = None
        for _ in range(draw(st.integers(0, 25))):
            address += draw(st.integers(0, 12))
            name = f"p{len(points)}"
            if table.is_bit:
                points.append(RegisterPoint(name, table, address, DataType.BOOL))
                address += 1
                continue
            kind = draw(st.sampled_from([*REGISTER_TYPES, DataType.STRING]))
            if kind is DataType.BIT:
                if last_bit_reg is not None and draw(st.booleans()):
                    reg, used = last_bit_reg  # another bit of the previous bit point's register
                    free = sorted(set(range(16)) - used)
                    if free:
                        bit = draw(st.sampled_from(free))
                        used.add(bit)
                        points.append(RegisterPoint(name, table, reg, kind, bit=bit))
                        continue
                bit = draw(st.integers(0, 15))
                points.append(RegisterPoint(name, table, address, kind, bit=bit))
                last_bit_reg = (address, {bit})
                address += 1
                continue
            length = draw(st.integers(1, 8)) if kind is DataType.STRING else 0
            order = draw(st.sampled_from(list(ByteOrder)))
            point = RegisterPoint(name, table, address, kind, order, length=length)
            points.append(point)
            address = point.end
    return draw(st.permutations(points))


def _covering(plan: ReadPlan, p: RegisterPoint) -> list[int]:
    return [
        i
        for i, r in enumerate(plan.requests)
        if r.table is p.table and r.address <= p.address and p.end <= r.end
    ]


@settings(max_examples=150, deadline=None)
@given(
    points=register_maps(),
    max_gap=st.integers(0, 20),
    max_registers=st.integers(8, 125),
    max_bits=st.integers(1, 2000),
)
def test_requests_cover_exactly_the_points_within_limits(
    points: list[RegisterPoint], max_gap: int, max_registers: int, max_bits: int
) -> None:
    plan = compile_plan(points, max_gap, max_registers, max_bits)
    members: list[list[RegisterPoint]] = [[] for _ in plan.requests]
    for p in points:
        [i] = _covering(plan, p)  # inside exactly one request
        members[i].append(p)
    for request, inside in zip(plan.requests, members, strict=True):
        limit = max_bits if request.table.is_bit else max_registers
        assert request.count <= limit
        assert request.count <= (2000 if request.table.is_bit else 125)
        assert inside, "a request reads no point"
        spans = sorted((p.address, p.end) for p in inside)
        assert request.address == spans[0][0]  # nothing unread before the first point...
        assert request.end == max(end for _, end in spans)  # ...or after the last one
        reach = spans[0][1]
        for start, end in spans[1:]:
            assert start - reach <= max_gap  # the unread gap inside a request
            reach = max(reach, end)
    # Greedy merging: a request is only cut where the gap or the size limit forces it.
    for a, b in zip(plan.requests, plan.requests[1:], strict=False):
        if a.table is b.table:
            limit = max_bits if a.table.is_bit else max_registers
            first_of_b = min(
                (p for p in points if _covering(plan, p) == [plan.requests.index(b)]),
                key=lambda p: (p.address, -p.end),
            )
            assert first_of_b.address - a.end > max_gap or first_of_b.end - a.address > limit
    # Frame order is the map's order, strings apart.
    assert [s.name for s in plan.points] == [p.name for p in points if p.type.is_numeric]
    assert list(plan.strings) == [p.name for p in points if not p.type.is_numeric]


@settings(max_examples=60, deadline=None)
@given(points=register_maps(), data=st.data())
def test_a_failed_request_makes_exactly_its_points_bad(
    points: list[RegisterPoint], data: st.DataObject
) -> None:
    plan = compile_plan(points, max_gap=3)
    truth: dict[str, float | str] = {}
    for p in points:
        if p.type is DataType.STRING:
            truth[p.name] = "x" * min(p.length, 3)
        elif p.type in (DataType.BIT, DataType.BOOL):
            truth[p.name] = float(data.draw(st.integers(0, 1)))
        else:
            truth[p.name] = float(data.draw(st.integers(0, 32767)))
    cells = encode_registers(points, truth)
    failed = data.draw(st.sets(st.integers(0, max(len(plan.requests) - 1, 0))))
    blocks = [
        None
        if i in failed
        else np.array([cells[r.table].get(r.address + k, 0) for k in range(r.count)],
                      dtype=np.uint8 if r.table.is_bit else np.uint16)
        for i, r in enumerate(plan.requests)
    ]  # fmt: skip
    values, quality, strings = plan.decode(blocks)
    by_name = {p.name: p for p in points}
    for i, spec in enumerate(plan.points):
        [request] = _covering(plan, by_name[spec.name])
        if request in failed:
            assert quality[i] == Quality.BAD and math.isnan(values[i])
        else:
            assert quality[i] == Quality.GOOD and values[i] == truth[spec.name]
    expected_strings = {
        name: truth[name]
        for name in plan.strings
        if _covering(plan, by_name[name])[0] not in failed
    }
    assert strings == expected_strings


def test_short_blocks_and_non_finite_values_are_bad_and_limits_do_not_change_quality() -> None:
    points = [
        RegisterPoint("a", Table.HOLDING, 0, DataType.U16, high=10.0),
        RegisterPoint("b", Table.HOLDING, 1, DataType.F32),
        RegisterPoint("c", Table.INPUT, 0, DataType.U32),
    ]
    plan = compile_plan(points)
    nan_f32 = [0x7FC0, 0x0000]
    values, quality, _ = plan.decode(
        [np.array([500, *nan_f32], dtype=np.uint16), np.array([1], dtype=np.uint16)]
    )
    assert values[0] == 500.0 and quality[0] == Quality.GOOD  # above high: an alarm, not BAD
    assert math.isnan(values[1]) and quality[1] == Quality.BAD
    assert math.isnan(values[2]) and quality[2] == Quality.BAD  # 1 register for a 2-register read
    with pytest.raises(ValueError, match="1 blocks for 2 requests"):
        plan.decode([None])


def test_compile_rejects_impossible_limits_and_duplicate_names() -> None:
    p = RegisterPoint("a", Table.HOLDING, 0, DataType.U16)
    for kwargs in (
        {"max_registers": 126},
        {"max_registers": 0},
        {"max_bits": 2001},
        {"max_gap": -1},
    ):
        with pytest.raises(ValueError):
            compile_plan([p], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duplicate"):
        compile_plan([p, p])
    with pytest.raises(ValueError, match="spans 4"):
        compile_plan([RegisterPoint("x", Table.INPUT, 0, DataType.F64)], max_registers=3)


def test_requests_split_at_the_protocol_limit() -> None:
    regs = [RegisterPoint(f"r{i}", Table.INPUT, 2 * i, DataType.F32) for i in range(100)]
    bits = [RegisterPoint(f"c{i}", Table.COIL, i, DataType.BOOL) for i in range(4500)]
    plan = compile_plan(regs + bits)
    assert [(r.table, r.address, r.count) for r in plan.requests] == [
        (Table.COIL, 0, 2000),
        (Table.COIL, 2000, 2000),
        (Table.COIL, 4000, 500),
        (Table.INPUT, 0, 124),  # 62 f32 points: a 63rd would need 126 registers
        (Table.INPUT, 124, 76),
    ]


# ---- map validation ------------------------------------------------------------------------


def _issues(doc: dict[str, Any], **kw: Any) -> dict[str, str]:
    sink = IssueSink("site.toml")
    parse_register_map(doc, sink, "grid.meters.head", **kw)
    assert all(i.file == "site.toml" for i in sink.issues)
    return {i.path: i.reason for i in sink.issues}


def test_invalid_map_reports_every_problem() -> None:
    doc = {
        "defaults": {"table": "inputs", "type": "f32", "colour": 1},
        "points": [
            {"name": "ok", "address": 0, "table": "input", "type": "f32"},
            {"name": "t", "address": 2, "type": "f33"},
            {"name": "o", "address": 4, "order": "ABDC"},
            {"name": "bit_high", "address": 6, "type": "bit", "bit": 16},
            {"name": "coil_bit", "address": 0, "table": "coil", "bit": 3},
            {"name": "ok", "address": 10},
            {"name": "overlap", "address": 1, "table": "input", "type": "u16"},
            {"name": "scale", "address": 12, "scale": "x", "unitt": "V"},
            {"name": "str", "address": 14, "type": "string", "scale": 2.0},
            {"name": "big", "address": 65535, "type": "u32"},
            {"name": "lim", "address": 20, "low": 5, "high": 1, "deadband": -1},
            {"name": "zero", "address": 22, "scale": 0},
            {"name": "boolreg", "address": 24, "type": "bool"},
            {"name": "nobit", "address": 26, "type": "bit"},
            {"name": "lenbad", "address": 28, "type": "u16", "length": 3},
            {"name": "with space", "address": 30, "type": "u16"},
            {"address": 32, "type": True},
            "not a table",
        ],
        "extra": 1,
    }
    p = "grid.meters.head"
    issues = _issues(doc)
    expected = {
        f"{p}.extra": "unknown key",
        f"{p}.defaults.table": "unknown table 'inputs'",
        f"{p}.defaults.colour": "unknown key",
        f"{p}.points[1].type": "unknown type 'f33'",
        f"{p}.points[2].order": "unknown order 'ABDC'",
        f"{p}.points[3].bit": "outside 0..15",
        f"{p}.points[4].bit": "a bit on a coil",
        f"{p}.points[5].name": "duplicate point name 'ok'",
        f"{p}.points[6].address": "overlap point 'ok'",
        f"{p}.points[7].scale": "expected a number",
        f"{p}.points[7].unitt": "unknown key",
        f"{p}.points[8].scale": "not used by a string point",
        f"{p}.points[8].length": "required key is missing",
        f"{p}.points[9].address": "pass 65535",
        f"{p}.points[10].low": "above high",
        f"{p}.points[10].deadband": "must be between 0 and",
        f"{p}.points[11].scale": "must not be 0",
        f"{p}.points[12].type": "bool is for coil",
        f"{p}.points[13].bit": "required key is missing",
        f"{p}.points[14].length": "only for type string",
        f"{p}.points[15].name": "must be 1-64 characters of A-Z a-z 0-9 _ . -",
        f"{p}.points[16].name": "required key is missing",
        f"{p}.points[16].type": "expected a string",
        f"{p}.points[17]": "expected a table",
    }
    assert set(issues) == set(expected)
    for path, fragment in expected.items():
        assert fragment in issues[path], (path, issues[path])


def test_bits_may_share_a_register_but_not_a_bit_or_a_register_with_a_number() -> None:
    def doc(*pts: dict[str, Any]) -> dict[str, Any]:
        return {"defaults": {"table": "holding"}, "points": list(pts)}

    fine = doc(
        {"name": "b0", "address": 5, "type": "bit", "bit": 0},
        {"name": "b1", "address": 5, "type": "bit", "bit": 1},
    )
    assert _issues(fine) == {}
    same_bit = doc(
        {"name": "b0", "address": 5, "type": "bit", "bit": 1},
        {"name": "b1", "address": 5, "type": "bit", "bit": 1},
    )
    assert (
        "bit 1 of register 5 is also point 'b0'"
        in _issues(same_bit)["grid.meters.head.points[1].address"]
    )
    with_word = doc(
        {"name": "w", "address": 4, "type": "u32"},
        {"name": "b1", "address": 5, "type": "bit", "bit": 1},
    )
    assert set(_issues(with_word)) == {"grid.meters.head.points[1].address"}
    other_tables = doc(
        {"name": "h", "address": 4, "type": "u32"},
        {"name": "i", "address": 4, "type": "u32", "table": "input"},
    )
    assert _issues(other_tables) == {}


FAULTS = {
    "type": ("type", "f128"),
    "order": ("order", "XYZW"),
    "address": ("address", -1),
    "bit": ("bit", 99),
    "scale": ("scale", float("nan")),
    "unknown": ("frobnicate", 1),
    "unit": ("unit", 3),
}


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 30),
    faults=st.dictionaries(st.integers(0, 29), st.sampled_from(sorted(FAULTS)), max_size=10),
)
def test_every_injected_fault_is_reported_at_its_key(n: int, faults: dict[int, str]) -> None:
    points: list[dict[str, Any]] = [
        {"name": f"p{i}", "address": 2 * i, "type": "bit" if i % 5 == 0 else "i32"}
        for i in range(n)
    ]
    for p in points:
        if p["type"] == "bit":
            p["bit"] = 3
    want = set()
    for i, fault in faults.items():
        if i >= n:
            continue
        key, value = FAULTS[fault]
        if key == "bit" and points[i]["type"] != "bit":
            key, value = "type", "u17"
        points[i][key] = value
        want.add(f"m.points[{i}].{key}")
    sink = IssueSink("f.toml")
    good = parse_register_map({"points": points}, sink, "m")
    assert {i.path for i in sink.issues} == want
    assert len(good) == n - len(want)
