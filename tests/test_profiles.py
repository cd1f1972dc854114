"""Packaged device profiles: each loads without issues and compiles to the expected requests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivers.modbus.codec import encode_registers
from drivers.modbus.plan import compile_plan
from drivers.modbus.regmap import known_profiles, load_profile, load_register_map
from drivers.modbus.types import ByteOrder, DataType, RegisterPoint, Table
from gateway.config.issues import IssueSink

COMMON = [
    *(f"voltage_l{i}" for i in (1, 2, 3)),
    *(f"current_l{i}" for i in (1, 2, 3)),
    *(f"power_l{i}" for i in (1, 2, 3)),
    *(f"reactive_power_l{i}" for i in (1, 2, 3)),
    *(f"power_factor_l{i}" for i in (1, 2, 3)),
    "power_total",
    "reactive_power_total",
    "frequency",
    "energy_import",
    "energy_export",
]
UNITS = {"voltage": "V", "current": "A", "power": "W", "reactive": "var", "frequency": "Hz"}

# name -> (table, number of points, requests as (address, count) with max_gap 0)
EXPECTED = {
    "eastron_sdm630": (
        Table.INPUT,
        35,
        [(0, 36), (42, 2), (46, 4), (52, 2), (56, 2), (60, 4), (70, 10), (200, 6), (224, 2),
         (342, 2)],
    ),
    "janitza_umg604": (
        Table.HOLDING,
        34,
        [(19000, 52), (19068, 2), (19076, 2), (19110, 12)],
    ),
}  # fmt: skip


def test_every_packaged_profile_is_tested() -> None:
    assert known_profiles([]) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_profile_loads_and_compiles(name: str) -> None:
    sink = IssueSink("config.toml")
    points = load_profile(name, sink, "grid.meters.m.profile", [])
    assert sink.issues == []
    table, n_points, requests = EXPECTED[name]
    assert len(points) == n_points
    assert {p.table for p in points} == {table}
    assert all(p.type is DataType.F32 and p.order is ByteOrder.ABCD for p in points)
    plan = compile_plan(points)
    assert [(r.address, r.count) for r in plan.requests] == requests
    assert all(r.table is table for r in plan.requests)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_profile_uses_the_common_names_and_units(name: str) -> None:
    points = {p.name: p for p in load_profile(name, IssueSink("c"), "p", [])}
    assert set(COMMON) <= set(points)
    for point_name in COMMON:
        unit = points[point_name].unit
        if point_name.startswith("energy"):
            assert unit == "kWh"
        elif point_name.startswith("power_factor"):
            assert unit == ""
        else:
            assert unit == UNITS[point_name.split("_")[0]], point_name


def _plausible(point: RegisterPoint, i: int) -> float:
    """A distinct value inside the point's plausible range."""
    lo = point.valid_min if point.valid_min is not None else 0.0
    hi = point.valid_max if point.valid_max is not None else 1e6
    return lo + (hi - lo) * ((i % 9) + 0.5) / 10


def test_profile_values_decode_to_what_the_device_holds() -> None:
    # Known readings written the way the UMG 604 stores them (Wh) come back in kWh.
    points = load_profile("janitza_umg604", IssueSink("c"), "p", [])
    plan = compile_plan(points)
    truth = {p.name: _plausible(p, i) for i, p in enumerate(points)}
    cells = encode_registers(points, truth)[Table.HOLDING]
    # With max_gap 0 every register of a request belongs to some point.
    blocks = [
        np.array([cells[r.address + k] for k in range(r.count)], dtype=np.uint16)
        for r in plan.requests
    ]
    values, quality, _ = plan.decode(blocks)
    expected = np.array([truth[s.name] for s in plan.points])
    assert (quality == 0).all()
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_site_profile_dir_wins_and_unknown_names_list_known(tmp_path: Path) -> None:
    (tmp_path / "eastron_sdm630.toml").write_text(
        '[profile]\nname = "patched"\nsource = "site"\n'
        '[[points]]\nname = "voltage_l1"\naddress = 0\ntable = "input"\ntype = "f32"\n'
    )
    sink = IssueSink("config.toml")
    points = load_profile("eastron_sdm630", sink, "grid.meters.m.profile", [tmp_path])
    assert sink.issues == [] and [p.name for p in points] == ["voltage_l1"]

    load_profile("sdm999", sink, "grid.meters.m.profile", [tmp_path])
    [issue] = sink.issues
    assert issue.path == "grid.meters.m.profile"
    assert "eastron_sdm630" in issue.reason and "janitza_umg604" in issue.reason

    sink = IssueSink("config.toml")
    load_profile("../etc/passwd", sink, "grid.meters.m.profile", [tmp_path])
    assert len(sink.issues) == 1


def test_profile_file_issues_name_the_profile_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text(
        '[profile]\nname = "x"\nsource = "y"\n[[points]]\nname = "a"\naddress = 1\ntype = "f33"\n'
    )
    sink = IssueSink("config.toml")
    assert load_profile("broken", sink, "grid.meters.m.profile", [tmp_path]) == []
    [issue] = sink.issues
    assert (issue.file, issue.path) == (str(bad), "points[0].type")


def test_config_adds_and_overrides_profile_points() -> None:
    doc = {
        "profile": "eastron_sdm630",
        "host": "10.0.0.5",
        "points": [
            # replaces the profile's point: a meter wired with swapped words
            {"name": "frequency", "address": 70, "table": "input", "type": "f32",
             "order": "CDAB", "deadband": 0.01},
            {"name": "serial", "address": 0xFC00, "table": "holding", "type": "u32"},
            # clashes with the profile's voltage_l2 (input 2..3)
            {"name": "clash", "address": 3, "table": "input", "type": "u16"},
        ],
    }  # fmt: skip
    sink = IssueSink("config.toml")
    points = load_register_map(doc, sink, "grid.meters.m", [], extra_keys={"host"})
    by_name = {p.name: p for p in points}
    assert by_name["frequency"].order is ByteOrder.CDAB
    assert by_name["frequency"].deadband == 0.01
    assert [p.name for p in points].count("frequency") == 1
    assert by_name["serial"].table is Table.HOLDING
    [issue] = sink.issues
    assert issue.path == "grid.meters.m.points[2].address"
    assert "voltage_l2" in issue.reason
