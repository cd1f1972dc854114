"""Values a device sends that cannot be readings: NaN, infinity, 3e38 V. Each is BAD with its
reason, the device stays "answered", and the journal gets one line per episode."""

from __future__ import annotations

import logging
import math
import struct

import numpy as np
import pytest

from drivers.modbus.codec import encode_registers
from drivers.modbus.health import ValueChecks
from drivers.modbus.plan import compile_plan
from drivers.modbus.regmap import load_profile, parse_register_map
from drivers.modbus.types import DataType, RegisterPoint, Table
from gateway.config.issues import IssueSink
from gateway.core.model import Quality

PROFILES = ("eastron_sdm630", "janitza_umg604")


def _f32(value: float) -> list[int]:
    raw = struct.pack(">f", value)
    return [int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")]


def _point(name: str, address: int, lo: float | None, hi: float | None) -> RegisterPoint:
    return RegisterPoint(
        name, Table.HOLDING, address, DataType.F32, unit="V", valid_min=lo, valid_max=hi
    )


def test_values_outside_the_plausible_range_are_bad_with_the_reason() -> None:
    points = [
        _point("v1", 0, 0.0, 1000.0),
        _point("v2", 2, 0.0, 1000.0),
        _point("v3", 4, None, 1000.0),
        _point("free", 6, None, None),
    ]
    plan = compile_plan(points)
    regs = _f32(3e38) + _f32(230.0) + _f32(-5.0) + _f32(3e38)
    values, quality, _strings, rejected = plan.decode_checked([np.array(regs, np.uint16)])
    assert quality.tolist() == [Quality.BAD, Quality.GOOD, Quality.GOOD, Quality.GOOD]
    assert math.isnan(values[0]) and values[1] == 230.0 and values[2] == -5.0
    assert values[3] == pytest.approx(3e38, rel=1e-6)  # no range: the map says nothing
    assert rejected == {"v1": "3e+38 V outside the plausible range 0..1000"}


def test_nan_and_infinity_from_the_device_are_bad_values_with_the_reason() -> None:
    plan = compile_plan([_point("v1", 0, None, None), _point("v2", 2, None, None)])
    regs = _f32(float("nan")) + _f32(float("inf"))
    values, quality, _strings, rejected = plan.decode_checked([np.array(regs, np.uint16)])
    assert (quality == Quality.BAD).all() and np.isnan(values).all()
    assert set(rejected) == {"v1", "v2"}
    assert "not a finite number" in rejected["v1"]


def test_a_request_that_failed_has_no_value_to_reject() -> None:
    plan = compile_plan([_point("v1", 0, 0.0, 1.0)])
    _values, quality, _strings, rejected = plan.decode_checked([None])
    assert quality.tolist() == [Quality.BAD] and rejected == {}


def test_map_keys_valid_min_max_are_parsed_and_checked() -> None:
    sink = IssueSink("site.toml")
    doc = {
        "points": [
            {"name": "a", "address": 0, "valid_min": 0, "valid_max": 1000.0},
            {"name": "b", "address": 1, "valid_min": 5.0, "valid_max": 1.0},
            {"name": "c", "address": 2, "valid_max": float("nan")},
            {"name": "d", "address": 3, "type": "string", "length": 2, "valid_min": 0},
        ]
    }
    points = parse_register_map(doc, sink, "")
    issues = {i.path: i.reason for i in sink.issues}
    assert [p.name for p in points] == ["a"]
    assert (points[0].valid_min, points[0].valid_max) == (0.0, 1000.0)
    assert set(issues) == {"points[1].valid_min", "points[2].valid_max", "points[3].valid_min"}
    assert "above valid_max" in issues["points[1].valid_min"]


@pytest.mark.parametrize("name", PROFILES)
def test_shipped_profiles_give_every_point_a_plausible_range(name: str) -> None:
    points = load_profile(name, IssueSink("c"), "p", [])
    missing = [p.name for p in points if p.valid_min is None or p.valid_max is None]
    assert not missing
    volts = [p for p in points if p.name.startswith("voltage")]
    assert volts and all((p.valid_min, p.valid_max) == (0.0, 1000.0) for p in volts)


@pytest.mark.parametrize("name", PROFILES)
def test_3e38_volts_from_a_profiled_meter_is_bad(name: str) -> None:
    """The field report: 3e38 V was accepted as GOOD."""
    points = load_profile(name, IssueSink("c"), "p", [])
    plan = compile_plan(points)
    truth = {p.name: 1.0 for p in points}
    truth["frequency"] = 50.0
    truth["voltage_l1"] = 3e38
    table = points[0].table
    cells = encode_registers(points, truth)[table]
    blocks = [
        np.array([cells[r.address + k] for k in range(r.count)], dtype=np.uint16)
        for r in plan.requests
    ]
    _values, quality, _strings, rejected = plan.decode_checked(blocks)
    names = [p.name for p in plan.points]
    assert quality[names.index("voltage_l1")] == Quality.BAD
    assert list(rejected) == ["voltage_l1"]
    assert int(np.count_nonzero(quality == Quality.BAD)) == 1


def test_rejected_values_log_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="drivers.modbus")
    checks = ValueChecks("m1")
    for _ in range(50):
        checks.record({"v1": "not a finite number (NaN or infinity)"})
    checks.record({"v1": "x", "v2": "1e+09 V outside the plausible range 0..1000"})
    for _ in range(50):
        checks.record({"v2": "y"})
    for _ in range(50):
        checks.record({})
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("modbus device m1: 1 value(s) BAD: v1: not a finite number")
    assert "v2: 1e+09 V outside" in lines[1]
    assert "plausible again" in lines[2]
