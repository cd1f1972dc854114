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
- ``[plant.rules]``: the profile's hard limits plus the config's own
  (:mod:`gateway.plant.limits_config`).
- ``[plant.maintenance]``: EOH factors, inspections and how the counters are kept
  (:mod:`gateway.plant.maintenance_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from drivers.opcua.config import OpcUaConfig, parse_opcua
from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.registry import Section, SectionInput
from gateway.config.rules import REQUIRED, one_of, ranged, safe_name, subtable
from gateway.plant.anomaly import MODELS_DIR, ModelCard
from gateway.plant.limits_config import check_limit_tags, parse_limits
from gateway.plant.maintenance import MaintenancePolicy
from gateway.plant.maintenance_config import CounterSettings, parse_maintenance
from gateway.plant.rules import Limit
from gateway.plant.tags import PROFILES, TAGS
from gateway.plant.tflite import ModelError


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
    op = dict(subtable(sink, "plant", table, "opcua"))
    if "opcua" not in table:
        sink.error("plant.opcua", "required table is missing (it names the PLC's endpoint)")
        return None
    tags = subtable(sink, "plant", table, "tags")
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


def _model(sink: IssueSink, table: Mapping[str, Any], profile: str) -> Path | None:
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
    profile = one_of(sink, path, table, "profile", REQUIRED, PROFILES)
    device = take(sink, path, table, "device", str, profile or "plant")
    # The device names the plant's summaries, alarms and status: a name like a meter's.
    if isinstance(device, str) and not safe_name(sink, join(path, "device"), device, "device"):
        device = profile or "plant"
    window = ranged(sink, path, table, "window", 60.0, 1.0, 3600.0, unit="seconds")
    settle = ranged(sink, path, table, "settle_s", None, 0.0, 86_400.0, unit="s")
    # 1 kW .. 1 GW: from a micro CHP to the largest gas turbine made.
    rated = ranged(sink, path, table, "rated_kw", None, 1.0, 1e6, unit="kW")
    speed = ranged(sink, path, table, "simulation_speed", 1.0, 1.0, 1000.0)
    if profile is None:
        return None
    default_lhv = PROFILE_TAGS[profile].default_lhv
    lhv = ranged(sink, path, table, "fuel_lhv", default_lhv, 0.1, 100.0, unit="kWh")
    model = _model(sink, table, profile)
    opcua = _opcua(sink, table, profile, env)
    limits = parse_limits(sink, subtable(sink, path, table, "rules"), profile)
    if opcua is not None:
        check_limit_tags(sink, limits, {n.name for n in opcua.nodes})
    policy, counters = parse_maintenance(
        sink, subtable(sink, path, table, "maintenance"), profile, state_dir
    )
    if len(sink.issues) > before or opcua is None:
        return None
    return PlantConfig(
        bool(enabled),
        profile,
        device or profile,  # an empty name would leave summaries without a device
        model,
        settle,
        rated,
        window,
        lhv,
        speed,
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
