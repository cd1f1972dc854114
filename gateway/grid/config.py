"""``[grid]`` and ``[modbus]``: the meters the grid daemon polls, compiled into read plans.

Register maps come from a named profile and/or inline points; limits and deadbands can be set for
every meter at once (``[grid.limits.POINT]``) and per meter (``[grid.meters.M.limits.POINT]``).
Compiling here means a bad map refuses to start before a single request goes on the wire.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.modbus.device import DeviceConnection, SerialBusSettings, parse_bus, parse_device
from drivers.modbus.regmap import load_register_map
from drivers.modbus.types import RegisterPoint
from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.registry import Section, SectionInput
from gateway.config.root import path_problem
from gateway.config.rules import integer_ranged, ranged, safe_name, shown_key
from gateway.grid.estimation_config import (
    METER_KEYS,
    EstimationConfig,
    MeterLocation,
    parse_estimation,
    parse_meter_location,
)

if TYPE_CHECKING:
    from drivers.modbus.plan import ReadPlan

_MAP_KEYS = {"profile", "points", "defaults", "limits"}
_LIMIT_KEYS = {"low", "high", "deadband"}
# A limit or deadband is in its point's unit (V, A, W, Wh, Hz, %): a billion of any of them is past
# every LV meter's range (1e308 was a limit that never trips).
POINT_MAX = 1e9
# Points the estimator reads from a located meter, per phase of the meter (L1..L3).
ESTIMATE_POINTS = ("power_l{}", "reactive_power_l{}", "voltage_l{}")


@dataclass(frozen=True)
class MeterConfig:
    name: str
    connection: DeviceConnection
    points: tuple[RegisterPoint, ...]
    location: MeterLocation | None = None  # where on the feeder it measures (estimation)

    @cached_property
    def plan(self) -> ReadPlan:
        # Compiled on first use: the map is fully validated already, and compiling needs numpy,
        # which a process that only checks the config (the uplink, check-config) must not load.
        # start-up: numpy (drivers.modbus.plan) loads when a plan is first used, not at parse.
        from drivers.modbus.plan import compile_plan

        return compile_plan(list(self.points), max_gap=self.connection.max_gap)


@dataclass(frozen=True)
class GridConfig:
    enabled: bool
    window: float  # seconds of samples aggregated into one summary
    integrity_every: int  # every Nth window reports all points even if none moved past its deadband
    meters: dict[str, MeterConfig]
    buses: dict[str, SerialBusSettings]
    profile_dirs: tuple[Path, ...]
    estimation: EstimationConfig | None = None


def _limits(sink: IssueSink, path: str, table: Any) -> dict[str, dict[str, float]]:
    if not isinstance(table, dict):
        sink.error(path, f"expected a table of point names, got {type(table).__name__}")
        return {}
    out: dict[str, dict[str, float]] = {}
    for point, spec in table.items():
        where = join(path, shown_key(point))
        if not safe_name(sink, where, point, "point"):
            continue
        if not isinstance(spec, dict):
            sink.error(where, "expected a table with low, high and/or deadband")
            continue
        check_keys(sink, where, spec, _LIMIT_KEYS)
        unit = "in the point's unit"
        vals = {
            "low": ranged(sink, where, spec, "low", None, -POINT_MAX, POINT_MAX, unit=unit),
            "high": ranged(sink, where, spec, "high", None, -POINT_MAX, POINT_MAX, unit=unit),
            "deadband": ranged(sink, where, spec, "deadband", None, 0.0, POINT_MAX, unit=unit),
        }
        got = {k: v for k, v in vals.items() if v is not None}
        if "low" in got and "high" in got and got["low"] >= got["high"]:
            sink.error(join(where, "low"), f"low ({got['low']}) must be below high ({got['high']})")
        out[point] = got
    return out


def _apply_limits(
    sink: IssueSink,
    path: str,
    points: list[RegisterPoint],
    limits: dict[str, dict[str, float]],
    strict: bool,
) -> list[RegisterPoint]:
    by_name = {p.name: p for p in points}
    if strict:
        for name in limits:
            if name not in by_name:
                sink.error(
                    join(path, name),
                    f"no such point on this meter (known: {', '.join(sorted(by_name))})",
                )
    return [_with_limits(p, limits[p.name]) if p.name in limits else p for p in points]


def _with_limits(point: RegisterPoint, lim: dict[str, float]) -> RegisterPoint:
    return dataclasses.replace(
        point,
        low=lim.get("low", point.low),
        high=lim.get("high", point.high),
        deadband=lim.get("deadband", point.deadband),
    )


def _parse_meter(
    sink: IssueSink,
    name: str,
    table: Mapping[str, Any],
    buses: Mapping[str, SerialBusSettings],
    common_limits: dict[str, dict[str, float]],
    profile_dirs: tuple[Path, ...],
) -> MeterConfig | None:
    path = f"grid.meters.{name}"
    n_before = len(sink.issues)
    conn = parse_device(name, table, sink, path, extra_keys=_MAP_KEYS | METER_KEYS)
    location = parse_meter_location(sink, path, table)
    if conn is not None and conn.bus is not None and conn.bus not in buses:
        known = ", ".join(sorted(buses)) or "none configured"
        sink.error(join(path, "bus"), f"unknown serial bus {conn.bus!r} (modbus.buses: {known})")
    # The register map is read from just its own keys, so each unknown key is reported once
    # (by parse_device, which knows both halves of the table).
    map_doc = {k: table[k] for k in _MAP_KEYS - {"limits"} if k in table}
    if "profile" not in map_doc and "points" not in map_doc:
        sink.error(path, "a meter needs a profile or points")
    points = load_register_map(map_doc, sink, path, profile_dirs)
    points = _apply_limits(sink, path, points, common_limits, strict=False)
    if "limits" in table:
        points = _apply_limits(
            sink,
            join(path, "limits"),
            points,
            _limits(sink, join(path, "limits"), table["limits"]),
            strict=True,
        )
    if location is not None:
        names = {p.name for p in points}
        for i, phase in enumerate(location.phases, start=1):
            missing = [f.format(i) for f in ESTIMATE_POINTS if f.format(i) not in names]
            if missing:
                sink.error(
                    join(path, "phases"),
                    f"phase {phase} is read from L{i}, but the meter has no {', '.join(missing)}",
                )
    if conn is None or len(sink.issues) > n_before:
        return None
    return MeterConfig(name, conn, tuple(points), location)


def parse_grid(
    sink: IssueSink, table: Mapping[str, Any], modbus: Mapping[str, Any], config_dir: Path
) -> GridConfig:
    path = "grid"
    check_keys(
        sink,
        path,
        table,
        {"enabled", "window", "integrity_every", "meters", "limits", "profile_dirs", "estimation"},
    )
    check_keys(sink, "modbus", modbus, {"buses"})
    enabled = take(sink, path, table, "enabled", bool, True)
    window = ranged(sink, path, table, "window", 60.0, 1.0, 3600.0, unit="seconds")
    integrity = integer_ranged(sink, path, table, "integrity_every", 10, 1, 10_000, unit="windows")
    dirs_raw = take(sink, path, table, "profile_dirs", list, [str(config_dir / "profiles")])
    profile_dirs: list[Path] = []
    for i, d in enumerate(dirs_raw or []):
        where = join(join(path, "profile_dirs"), i)
        if not isinstance(d, str):
            sink.error(where, "expected a directory path string")
        elif (problem := path_problem(config_dir / d, directory=True)) is not None:
            sink.error(where, problem)  # a NUL or a 300-byte name failed in the profile lookup
        else:
            profile_dirs.append(config_dir / d)

    buses: dict[str, SerialBusSettings] = {}
    bus_tables = take(sink, "modbus", modbus, "buses", dict, {})
    for bname, btable in (bus_tables or {}).items():
        bpath = f"modbus.buses.{shown_key(bname)}"
        if not safe_name(sink, bpath, bname, "bus"):
            continue
        if not isinstance(btable, dict):
            sink.error(bpath, "expected a table")
            continue
        bus = parse_bus(bname, btable, sink, bpath)
        if bus is not None:
            buses[bname] = bus

    common = _limits(sink, join(path, "limits"), table["limits"]) if "limits" in table else {}
    meters: dict[str, MeterConfig] = {}
    meter_tables = take(sink, path, table, "meters", dict, {})
    if enabled and not meter_tables:
        sink.error(join(path, "meters"), "the grid daemon is enabled but has no meters")
    for mname, mtable in (meter_tables or {}).items():
        # A meter name is a topic level and a log word: checked before it goes into any path.
        if not safe_name(sink, f"grid.meters.{shown_key(mname)}", mname, "meter"):
            continue
        if not isinstance(mtable, dict):
            sink.error(f"grid.meters.{mname}", "expected a table")
            continue
        meter = _parse_meter(sink, mname, mtable, buses, common, tuple(profile_dirs))
        if meter is not None:
            meters[mname] = meter
    estimation = None
    if "estimation" in table:
        located = {n: m.location for n, m in meters.items() if m.location is not None}
        estimation = parse_estimation(sink, table["estimation"], config_dir, located)
    return GridConfig(
        bool(enabled),
        window,
        integrity,
        meters,
        buses,
        tuple(profile_dirs),
        estimation,
    )


def _parse_section(given: SectionInput) -> GridConfig | None:
    if "grid" not in given.present:
        given.sink.error(
            "modbus", "modbus buses are configured but no daemon uses them ([grid] is missing)"
        )
        return None
    return parse_grid(given.sink, given.table("grid"), given.table("modbus"), given.config_dir)


def _describe(grid: GridConfig) -> list[str]:
    return [
        f"  meter {m.name}: {len(m.plan.points)} points in {len(m.plan.requests)} "
        f"request(s), every {m.connection.poll_interval:g} s"
        for m in grid.meters.values()
    ]


SECTION = Section(
    name="grid",
    tables=("grid", "modbus"),
    order=10,
    parse=_parse_section,
    daemon="gateway.grid.daemon",
    describe=_describe,
)
