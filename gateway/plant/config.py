"""``[plant]``: the PLC the plant daemon reads, the model that scores it, its rules and counters.

A config for the simulator is short, because every table has defaults per profile::

    [plant]
    profile = "gas_turbine"            # or "biogas_chp"

    [plant.opcua]
    endpoint = "opc.tcp://127.0.0.1:4840"
    security_policy = "None"
    security_mode = "None"
    allow_insecure = true

Keys (all but ``profile`` and ``[plant.opcua] endpoint`` optional):

- ``device``: the name in summaries and alarms (default: the profile).
- ``model``: the model's sidecar JSON (its ``.tflite`` beside it); default: the packaged model
  of the profile. ``settle_s`` overrides the model's scope gate (seconds of RUNNING before the
  model scores; the lube oil lags a start). ``rated_kw`` overrides the model's rating (load).
- ``window``: seconds per summary (default 60). Scores come once per model block (the sidecar's
  ``block_samples * sample_period_s``, 10 s for the shipped models), not per window.
- ``fuel_lhv``: lower heating value for the efficiency: kWh per kg of fuel gas (gas turbine,
  default 13.9) or kWh per m³ of methane (biogas CHP, default 9.97).
- ``simulation_speed``: plant seconds per wall second. 1 for a real PLC; >1 only against the
  accelerated simulator (benches), so an hour of plant data takes minutes.
- ``[plant.tags]``: tag = node id (or ``browse:0:Objects/...`` path) for tags whose node differs
  from the simulator's default (``ns=2;s=<profile>.<tag>``). For full control (units, deadbands)
  write ``[[plant.opcua.nodes]]`` instead; the node ``name`` is the tag name.
- ``[plant.rules]``: ``defaults = true`` keeps the profile's hard limits
  (:mod:`gateway.plant.rules`); each ``[[plant.rules.limits]]`` (``tag``, ``kind`` high|low,
  ``value``, ``hysteresis``, ``severity`` warning|alarm|trip, ``delay_s``, ``enable_tag`` +
  ``enable_above``) adds one or replaces a default of the same tag, kind and severity.
- ``[plant.maintenance]``: ``eoh_per_start``, ``eoh_per_trip``, ``trip_load_fraction``,
  ``[[plant.maintenance.inspections]]`` (``name``, ``interval_eoh``), ``state_file`` (under the
  state dir, default ``plant-counters.json``), ``save_every_s`` (60), ``max_gap_s`` (300: a data
  gap longer than this is not counted as operating time), and ``[plant.maintenance.initial]``
  (``operating_hours``, ``starts``, ``trips``) for a machine that has run before gridgate came,
  used only while no state file exists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.registry import Section, SectionInput
from gateway.plant.tags import PROFILES, TAGS

if TYPE_CHECKING:
    from drivers.opcua.config import OpcUaConfig
    from gateway.plant.maintenance import MaintenancePolicy
    from gateway.plant.rules import Limit


@dataclass(frozen=True)
class ProfileTags:
    """The tags the daemon itself reads for a profile, beyond the model's features."""

    state: str
    power: str
    fuel: str  # fuel mass flow (kg/h) or gas volume flow (m³/h)
    methane: str | None  # percent methane in the fuel gas (CHP) or None (fixed gas)
    needed: tuple[str, ...]  # every tag the feature extraction and summaries read
    default_lhv: float


_GT_NEEDED = (
    "state",
    "power",
    "fuel_flow",
    "cdp",
    "inlet_temp",
    *(f"exhaust_temp_{i}" for i in range(1, 7)),
    "bearing_vibration",
    "lube_oil_temp",
    "lube_oil_pressure",
)
_CHP_NEEDED = (
    "state",
    "engine_power",
    "heat_power",
    "gas_flow",
    "methane_content",
    "coolant_supply_temp",
    "coolant_return_temp",
    "exhaust_temp",
    "bearing_vibration",
    "lube_oil_temp",
    "lube_oil_pressure",
    "ambient_temp",
)
PROFILE_TAGS: Final = {
    # LHV as the simulator models it (gateway.sim.plant): natural gas 13.9 kWh/kg, methane
    # 9.97 kWh/m³ (standard conditions).
    "gas_turbine": ProfileTags("state", "power", "fuel_flow", None, _GT_NEEDED, 13.9),
    "biogas_chp": ProfileTags(
        "state", "engine_power", "gas_flow", "methane_content", _CHP_NEEDED, 9.97
    ),
}


@dataclass(frozen=True)
class CounterSettings:
    state_file: Path
    save_every_s: float
    max_gap_s: float
    initial_hours: float
    initial_starts: int
    initial_trips: int


@dataclass(frozen=True)
class PlantConfig:
    enabled: bool
    profile: str
    device: str
    model: Path | None  # sidecar JSON; None: the packaged model of the profile
    settle_s: float | None
    rated_kw: float | None
    window: float
    fuel_lhv: float
    simulation_speed: float
    opcua: OpcUaConfig
    limits: tuple[Limit, ...]
    maintenance: MaintenancePolicy
    counters: CounterSettings

    @property
    def tags(self) -> ProfileTags:
        return PROFILE_TAGS[self.profile]


_TOP_KEYS = {
    "enabled",
    "profile",
    "device",
    "model",
    "settle_s",
    "rated_kw",
    "window",
    "fuel_lhv",
    "simulation_speed",
    "opcua",
    "tags",
    "rules",
    "maintenance",
}


def _sub(sink: IssueSink, path: str, table: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = take(sink, path, table, key, dict, {})
    return value if isinstance(value, dict) else {}


def _ranged(
    sink: IssueSink,
    path: str,
    table: Mapping[str, Any],
    key: str,
    default: float | None,
    lo: float,
    hi: float,
    unit: str = "",
) -> float | None:
    value = take(sink, path, table, key, float, default)
    if value is None:
        return default
    if not (math.isfinite(value) and lo <= value <= hi):
        sink.error(join(path, key), f"must be between {lo:g} and {hi:g}{unit}")
        return default
    return float(value)


def _default_nodes(sink: IssueSink, profile: str, tags: Mapping[str, Any]) -> list[dict[str, Any]]:
    nodes = []
    known = {t.name: t for t in TAGS[profile]}
    for name, spec in known.items():
        nodes.append({"name": name, "node_id": f"ns=2;s={profile}.{name}", "unit": spec.unit})
    for tag, where in tags.items():
        key = join("plant.tags", tag)
        if not isinstance(where, str) or not where:
            sink.error(key, "expected a node id or browse:PATH string")
            continue
        node: dict[str, Any] = {"name": tag, "unit": known[tag].unit if tag in known else ""}
        if where.startswith("browse:"):
            node["browse_path"] = where.removeprefix("browse:")
        else:
            node["node_id"] = where
        if tag in known:
            nodes = [n if n["name"] != tag else node for n in nodes]
        else:
            nodes.append(node)
    return nodes


def _opcua(
    sink: IssueSink, table: Mapping[str, Any], profile: str, env: Mapping[str, str] | None
) -> OpcUaConfig | None:
    from drivers.opcua.config import parse_opcua

    op = dict(_sub(sink, "plant", table, "opcua"))
    if "opcua" not in table:
        sink.error("plant.opcua", "required table is missing (it names the PLC's endpoint)")
        return None
    tags = _sub(sink, "plant", table, "tags")
    if "nodes" in op:
        if tags:
            sink.error("plant.tags", "use either [plant.tags] or [[plant.opcua.nodes]], not both")
    else:
        op["nodes"] = _default_nodes(sink, profile, tags)
    cfg = parse_opcua(sink, op, "plant.opcua", env)
    if cfg is None:
        return None
    names = {n.name for n in cfg.nodes}
    missing = [t for t in PROFILE_TAGS[profile].needed if t not in names]
    if missing:
        sink.error(
            "plant.opcua.nodes",
            f"the {profile} model and summaries need tags {', '.join(missing)}",
        )
    return cfg


_LIMIT_KEYS = {
    "tag",
    "kind",
    "value",
    "hysteresis",
    "severity",
    "delay_s",
    "enable_tag",
    "enable_above",
}


def _limits(sink: IssueSink, table: Mapping[str, Any], profile: str) -> tuple[Limit, ...]:
    from gateway.plant.rules import BIOGAS_CHP_LIMITS, GAS_TURBINE_LIMITS, Limit

    path = "plant.rules"
    check_keys(sink, path, table, {"defaults", "limits"})
    use_defaults = take(sink, path, table, "defaults", bool, True)
    out: dict[str, Limit] = {}
    if use_defaults:
        defaults = GAS_TURBINE_LIMITS if profile == "gas_turbine" else BIOGAS_CHP_LIMITS
        out = {lim.name: lim for lim in defaults}
    raw = take(sink, path, table, "limits", list, [])
    added: set[str] = set()
    for i, item in enumerate(raw or []):
        where = join(join(path, "limits"), i)
        if not isinstance(item, dict):
            sink.error(where, "expected a table")
            continue
        check_keys(sink, where, item, _LIMIT_KEYS)
        tag = take(sink, where, item, "tag", str)
        kind = take(sink, where, item, "kind", str)
        value = take(sink, where, item, "value", float)
        hyst = take(sink, where, item, "hysteresis", float, 0.0)
        severity = take(sink, where, item, "severity", str, "alarm")
        delay = take(sink, where, item, "delay_s", float, 0.0)
        enable_tag = take(sink, where, item, "enable_tag", str, None)
        enable_above = take(sink, where, item, "enable_above", float, None)
        if (enable_tag is None) != (enable_above is None):
            sink.error(where, "enable_tag and enable_above go together")
        if None in (tag, kind, value, hyst, severity, delay):
            continue
        enable = (enable_tag, enable_above) if enable_tag and enable_above is not None else None
        lim = Limit(tag, kind, value, hyst, severity, delay, enable)
        for issue in lim.issues(where):
            sink.error(join(where, issue.path), issue.reason)
        if lim.name in added:
            sink.error(where, f"{tag} {kind} {severity} is defined twice")
        added.add(lim.name)
        out[lim.name] = lim
    return tuple(out.values())


def _check_limit_tags(sink: IssueSink, limits: tuple[Limit, ...], names: set[str]) -> None:
    for lim in limits:
        for tag in (lim.tag, *(() if lim.enable is None else (lim.enable[0],))):
            if tag not in names:
                sink.error(
                    "plant.rules",
                    f"limit {lim.name} reads tag {tag!r}, which no OPC UA node provides",
                )


def _maintenance(
    sink: IssueSink, table: Mapping[str, Any], profile: str, state_dir: Path
) -> tuple[MaintenancePolicy, CounterSettings]:
    from gateway.core.errors import ConfigError
    from gateway.plant.maintenance import (
        BIOGAS_CHP_POLICY,
        GAS_TURBINE_POLICY,
        Inspection,
        MaintenancePolicy,
    )

    path = "plant.maintenance"
    check_keys(
        sink,
        path,
        table,
        {
            "eoh_per_start",
            "eoh_per_trip",
            "trip_load_fraction",
            "inspections",
            "state_file",
            "save_every_s",
            "max_gap_s",
            "initial",
        },
    )
    base = GAS_TURBINE_POLICY if profile == "gas_turbine" else BIOGAS_CHP_POLICY
    per_start = _ranged(sink, path, table, "eoh_per_start", base.eoh_per_start, 0.0, 1000.0)
    per_trip = _ranged(sink, path, table, "eoh_per_trip", base.eoh_per_trip, 0.0, 10_000.0)
    trip_frac = _ranged(sink, path, table, "trip_load_fraction", base.trip_load_fraction, 0.0, 1.0)
    inspections = base.inspections
    raw = take(sink, path, table, "inspections", list, None)
    if raw is not None:
        found = []
        if not raw:
            sink.error(join(path, "inspections"), "at least one inspection, or leave it out")
        for i, item in enumerate(raw):
            where = join(join(path, "inspections"), i)
            if not isinstance(item, dict):
                sink.error(where, "expected a table")
                continue
            check_keys(sink, where, item, {"name", "interval_eoh"})
            name = take(sink, where, item, "name", str)
            interval = take(sink, where, item, "interval_eoh", float)
            if interval is not None and not (math.isfinite(interval) and interval > 0):
                sink.error(join(where, "interval_eoh"), "must be > 0 equivalent operating hours")
                continue
            if name is not None and interval is not None:
                found.append(Inspection(name, interval))
        inspections = tuple(found) or base.inspections
    try:
        policy = MaintenancePolicy(
            per_start if per_start is not None else base.eoh_per_start,
            per_trip if per_trip is not None else base.eoh_per_trip,
            trip_frac if trip_frac is not None else base.trip_load_fraction,
            inspections,
        )
    except ConfigError as exc:  # pragma: no cover - ranges are checked above
        for issue in exc.issues:
            sink.error(join(path, issue.path), issue.reason)
        policy = base
    state_file = take(sink, path, table, "state_file", str, "plant-counters.json")
    p = Path(state_file or "plant-counters.json")
    every = _ranged(sink, path, table, "save_every_s", 60.0, 1.0, 3600.0, " s")
    max_gap = _ranged(sink, path, table, "max_gap_s", 300.0, 1.0, 86_400.0, " s")
    initial = _sub(sink, path, table, "initial")
    ipath = join(path, "initial")
    check_keys(sink, ipath, initial, {"operating_hours", "starts", "trips"})
    hours = _ranged(sink, ipath, initial, "operating_hours", 0.0, 0.0, 1e7)
    counts = []
    for key in ("starts", "trips"):
        n = take(sink, ipath, initial, key, int, 0)
        if n is not None and n < 0:
            sink.error(join(ipath, key), "must be >= 0")
        counts.append(max(0, n or 0))
    counters = CounterSettings(
        p if p.is_absolute() else state_dir / p,
        every or 60.0,
        max_gap or 300.0,
        hours or 0.0,
        counts[0],
        counts[1],
    )
    return policy, counters


def _model(sink: IssueSink, table: Mapping[str, Any], profile: str) -> Path | None:
    from gateway.plant.anomaly import MODELS_DIR, ModelCard
    from gateway.plant.tflite import ModelError

    raw = take(sink, "plant", table, "model", str, None)
    path = Path(raw) if raw is not None else MODELS_DIR / f"{profile}.json"
    try:
        card = ModelCard.read(path)
    except ModelError as exc:
        sink.error("plant.model", str(exc))
        return None
    if card.profile != profile:
        sink.error("plant.model", f"{path} is a {card.profile} model, the plant is a {profile}")
    if not (path.parent / card.model_file).is_file():
        sink.error("plant.model", f"{path.parent / card.model_file} does not exist")
    return path if raw is not None else None


def parse_plant(
    sink: IssueSink,
    table: Mapping[str, Any],
    state_dir: Path,
    env: Mapping[str, str] | None = None,
) -> PlantConfig | None:
    path = "plant"
    before = len(sink.issues)
    check_keys(sink, path, table, _TOP_KEYS)
    enabled = take(sink, path, table, "enabled", bool, True)
    profile = take(sink, path, table, "profile", str)
    if profile is not None and profile not in PROFILES:
        sink.error(join(path, "profile"), f"must be one of {', '.join(map(repr, PROFILES))}")
        profile = None
    device = take(sink, path, table, "device", str, profile or "plant")
    window = _ranged(sink, path, table, "window", 60.0, 1.0, 3600.0, " seconds")
    settle = _ranged(sink, path, table, "settle_s", None, 0.0, 86_400.0, " s")
    rated = take(sink, path, table, "rated_kw", float, None)
    if rated is not None and not (math.isfinite(rated) and rated > 0):
        sink.error(join(path, "rated_kw"), "must be > 0 kW")
    speed = _ranged(sink, path, table, "simulation_speed", 1.0, 1.0, 1000.0)
    if profile is None:
        return None
    lhv = _ranged(
        sink, path, table, "fuel_lhv", PROFILE_TAGS[profile].default_lhv, 0.1, 100.0, " kWh"
    )
    model = _model(sink, table, profile)
    opcua = _opcua(sink, table, profile, env)
    limits = _limits(sink, _sub(sink, path, table, "rules"), profile)
    if opcua is not None:
        _check_limit_tags(sink, limits, {n.name for n in opcua.nodes})
    policy, counters = _maintenance(
        sink, _sub(sink, path, table, "maintenance"), profile, state_dir
    )
    if len(sink.issues) > before or opcua is None:
        return None
    return PlantConfig(
        bool(enabled),
        profile,
        device or profile,
        model,
        settle,
        rated,
        window or 60.0,
        lhv or PROFILE_TAGS[profile].default_lhv,
        speed or 1.0,
        opcua,
        limits,
        policy,
        counters,
    )


def _parse_section(given: SectionInput) -> PlantConfig | None:
    return parse_plant(given.sink, given.table("plant"), given.gateway.state_dir, given.env)


SECTION = Section(
    name="plant", tables=("plant",), order=30, parse=_parse_section, daemon="gateway.plant.daemon"
)
