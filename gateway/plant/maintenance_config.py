"""``[plant.maintenance]``: the machine's EOH policy and where and how its counters are kept.

Keys: ``eoh_per_start``, ``eoh_per_trip``, ``trip_load_fraction``,
``[[plant.maintenance.inspections]]`` (``name``, ``interval_eoh``), ``state_file`` (under the
state dir, default ``plant-counters.json``), ``save_every_s`` (60), ``max_gap_s`` (300: a data gap
longer than this is not counted as operating time), and ``[plant.maintenance.initial]``
(``operating_hours``, ``starts``, ``trips``) for a machine that has run before gridgate came, used
only while no state file exists. Unset keys take the profile's policy
(:mod:`gateway.plant.maintenance`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.rules import (
    REQUIRED,
    integer_ranged,
    ranged,
    resolved_path,
    subtable,
)
from gateway.core.errors import ConfigError
from gateway.plant.maintenance import (
    BIOGAS_CHP_POLICY,
    GAS_TURBINE_POLICY,
    Inspection,
    MaintenancePolicy,
)

_KEYS: Final = {
    "eoh_per_start",
    "eoh_per_trip",
    "trip_load_fraction",
    "inspections",
    "state_file",
    "save_every_s",
    "max_gap_s",
    "initial",
}
_MAX_COUNT: Final = 1_000_000  # starts or trips a machine has had before gridgate came


@dataclass(frozen=True)
class CounterSettings:
    state_file: Path
    save_every_s: float
    max_gap_s: float
    initial_hours: float
    initial_starts: int
    initial_trips: int


def parse_maintenance(
    sink: IssueSink, table: Mapping[str, Any], profile: str, state_dir: Path
) -> tuple[MaintenancePolicy, CounterSettings]:
    path = "plant.maintenance"
    check_keys(sink, path, table, _KEYS)
    return _policy(sink, path, table, profile), _counters(sink, path, table, state_dir)


def _policy(
    sink: IssueSink, path: str, table: Mapping[str, Any], profile: str
) -> MaintenancePolicy:
    base = GAS_TURBINE_POLICY if profile == "gas_turbine" else BIOGAS_CHP_POLICY
    per_start = ranged(sink, path, table, "eoh_per_start", base.eoh_per_start, 0.0, 1000.0)
    per_trip = ranged(sink, path, table, "eoh_per_trip", base.eoh_per_trip, 0.0, 10_000.0)
    trip_frac = ranged(sink, path, table, "trip_load_fraction", base.trip_load_fraction, 0.0, 1.0)
    inspections = _inspections(sink, path, table) or base.inspections
    try:
        return MaintenancePolicy(per_start, per_trip, trip_frac, inspections)
    except ConfigError as exc:  # pragma: no cover - ranges are checked above
        for issue in exc.issues:
            sink.error(join(path, issue.path), issue.reason)
        return base


def _inspections(sink: IssueSink, path: str, table: Mapping[str, Any]) -> tuple[Inspection, ...]:
    """The inspections written, or () to keep the profile's."""
    raw = take(sink, path, table, "inspections", list, None)
    if raw is None:
        return ()
    if not raw:
        sink.error(join(path, "inspections"), "at least one inspection, or leave it out")
    found = []
    for i, item in enumerate(raw):
        where = join(join(path, "inspections"), i)
        if not isinstance(item, dict):
            sink.error(where, "expected a table")
            continue
        check_keys(sink, where, item, {"name", "interval_eoh"})
        name = take(sink, where, item, "name", str)
        # An hour (a test) .. a million hours (over a century of running).
        interval = ranged(
            sink, where, item, "interval_eoh", REQUIRED, 1.0, 1e6, unit="equivalent operating hours"
        )
        if name is not None and interval is not None:
            found.append(Inspection(name, interval))
    return tuple(found)


def _counters(
    sink: IssueSink, path: str, table: Mapping[str, Any], state_dir: Path
) -> CounterSettings:
    ipath = join(path, "initial")
    initial = subtable(sink, path, table, "initial")
    check_keys(sink, ipath, initial, {"operating_hours", "starts", "trips"})
    return CounterSettings(
        resolved_path(sink, path, table, "state_file", "plant-counters.json", state_dir),
        ranged(sink, path, table, "save_every_s", 60.0, 1.0, 3600.0, unit="s"),
        ranged(sink, path, table, "max_gap_s", 300.0, 1.0, 86_400.0, unit="s"),
        ranged(sink, ipath, initial, "operating_hours", 0.0, 0.0, 1e7, unit="h"),
        integer_ranged(sink, ipath, initial, "starts", 0, 0, _MAX_COUNT),
        integer_ranged(sink, ipath, initial, "trips", 0, 0, _MAX_COUNT),
    )
