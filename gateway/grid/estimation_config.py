"""``[grid.estimation]`` and the meters' places on the feeder: what the estimator needs to know.

Meters say where they sit with keys on their own table (``[grid.meters.NAME]``):

- ``node = ID``: the meter measures what flows *into the feeder* at that node. At the LV busbar
  (the transformer's LV node) that is the whole feeder: the head meter. At any other node it is
  one connection (a smart meter at a house): its P/Q replace that node's pseudo-loads.
- ``line = ID``: the meter measures what passes through that line away from the busbar, i.e. the
  whole subtree behind it (a cable-cabinet meter on an outgoing cable). Positive P means power
  flowing away from the busbar; the current transformers must be mounted that way.
- ``phases = "abc"``: the feeder phase of the meter's L1, L2, L3 in that order (``"b"`` for a
  single-phase meter on phase b; ``"bca"`` for a rotated connection). Default ``"abc"``.

The feeder file is read here only as JSON (its ids), so ``check-config`` names unknown nodes and
lines without loading numpy; the full electrical validation runs when the daemon builds its model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.root import path_problem
from gateway.config.rules import REQUIRED, integer_ranged, one_of, ranged
from gateway.grid.slp import BUILTIN
from gateway.native import pgm_json

CONTROLLABLE_KINDS: Final = ("pv", "charger", "heat_pump")
PROFILES: Final = tuple(BUILTIN)
METER_KEYS: Final = frozenset({"node", "line", "phases"})
# power-grid-model ids are int32; a feeder file's ids are checked against the file as well.
MAX_ID: Final = 2**31 - 1

_KEYS: Final = {
    "feeder",
    "period",
    "u_min_pu",
    "u_max_pu",
    "loading_max_pct",
    "hysteresis_pu",
    "hysteresis_pct",
    "balance_iterations",
    "max_age",
    "utc_offset_h",
    "latitude_deg",
    "longitude_deg",
    "clear_sky_index",
    "pv_performance_ratio",
    "hints",
    "publish_nodes",
    "connections",
}
_CONNECTION_KEYS: Final = {
    "node",
    "phases",
    "annual_kwh",
    "profile",
    "pv_kwp",
    "controllable",
    "max_kw",
}


@dataclass(frozen=True)
class MeterLocation:
    """Where a meter measures: a node injection (``node``) or a line flow (``line``)."""

    node: int | None
    line: int | None
    phases: str  # feeder phase of the meter's L1, L2, L3


@dataclass(frozen=True)
class Connection:
    """One connection point without a real-time meter."""

    name: str
    node: int
    phases: str
    annual_kwh: float
    profile: str
    pv_kwp: float
    controllable: str | None
    max_kw: float


@dataclass(frozen=True)
class EstimationConfig:
    feeder: Path
    period: float
    u_min_pu: float
    u_max_pu: float
    loading_max_pct: float
    hysteresis_pu: float
    hysteresis_pct: float
    balance_iterations: int
    max_age: float
    utc_offset_h: float
    latitude_deg: float
    longitude_deg: float
    clear_sky_index: float
    pv_performance_ratio: float
    hints: bool
    publish_nodes: bool  # every node's voltages in each estimate body (commissioning, tests)
    connections: tuple[Connection, ...]
    meters: dict[str, MeterLocation]  # the meters the estimator uses, by meter name
    head_meter: str


def _phases(sink: IssueSink, path: str, table: Mapping[str, Any], default: str | None) -> str:
    where = join(path, "phases")
    value = take(sink, path, table, "phases", str, default)
    if value is None:
        return ""
    if not (1 <= len(value) <= 3 and set(value) <= set("abc") and len(set(value)) == len(value)):
        sink.error(where, f'must be 1 to 3 distinct letters of "abc", got {value!r}')
        return ""
    return str(value)


def parse_meter_location(
    sink: IssueSink, path: str, table: Mapping[str, Any]
) -> MeterLocation | None:
    """The ``node``/``line``/``phases`` keys of a meter; None when it has no place on the feeder."""
    if not any(k in table for k in METER_KEYS):
        return None
    node = integer_ranged(sink, path, table, "node", None, 0, MAX_ID)
    line = integer_ranged(sink, path, table, "line", None, 0, MAX_ID)
    phases = _phases(sink, path, table, "abc")
    if node is not None and line is not None:
        sink.error(path, "give either node (an injection) or line (a flow), not both")
    elif node is None and line is None:
        sink.error(join(path, "phases"), "phases needs node or line to say where the meter is")
    return MeterLocation(node, line, phases)


def _feeder_ids(sink: IssueSink, where: str, path: Path) -> tuple[set[int], set[int], int] | None:
    """Node ids, line ids and the LV busbar of a power-grid-model input file."""
    inner = IssueSink(lambda _p: str(path))
    data = pgm_json.load(path, inner)
    if inner or data.dataset_type != "input" or data.is_batch:
        reason = "; ".join(i.reason for i in inner.issues) or "not a single input dataset"
        sink.error(where, f"cannot use feeder file {path}: {reason}")
        return None
    comps = data.scenarios[0]
    nodes = {int(r["id"]) for r in comps.get("node", []) if "id" in r}
    lines = {int(r["id"]) for r in comps.get("line", []) if "id" in r}
    trafos = comps.get("transformer", [])
    sources = comps.get("source", [])
    if trafos and "to_node" in trafos[0]:
        busbar = int(trafos[0]["to_node"])
    elif sources and "node" in sources[0]:
        busbar = int(sources[0]["node"])
    else:
        sink.error(where, f"feeder file {path} has neither a transformer nor a source")
        return None
    return nodes, lines, busbar


def _connection(
    sink: IssueSink, path: str, name: str, table: Any, nodes: set[int] | None
) -> Connection | None:
    if not isinstance(table, dict):
        sink.error(path, "expected a table")
        return None
    before = len(sink.issues)
    check_keys(sink, path, table, _CONNECTION_KEYS)
    node = integer_ranged(sink, path, table, "node", REQUIRED, 0, MAX_ID)
    if node is not None and nodes is not None and node not in nodes:
        sink.error(join(path, "node"), f"no node {node} in the feeder file")
    phases = _phases(sink, path, table, "a")
    annual = ranged(sink, path, table, "annual_kwh", 0.0, 0.0, 1e7, unit="kWh")
    prof = one_of(sink, path, table, "profile", "household", PROFILES)
    pv_kwp = ranged(sink, path, table, "pv_kwp", 0.0, 0.0, 1e4, unit="kWp")
    kind = one_of(sink, path, table, "controllable", None, CONTROLLABLE_KINDS)
    max_kw = ranged(
        sink, path, table, "max_kw", pv_kwp if kind == "pv" else 0.0, 0.0, 1e4, unit="kW"
    )
    if kind in CONTROLLABLE_KINDS and max_kw <= 0:
        sink.error(join(path, "max_kw"), f"a controllable {kind} needs max_kw > 0")
    if "controllable" not in table and "max_kw" in table:
        sink.error(join(path, "max_kw"), "only a controllable connection has max_kw")
    if len(sink.issues) > before or node is None:
        return None
    return Connection(name, node, phases, annual, prof, pv_kwp, kind, max_kw)


def parse_estimation(
    sink: IssueSink,
    table: Any,
    config_dir: Path,
    meters: Mapping[str, MeterLocation],
    path: str = "grid.estimation",
) -> EstimationConfig | None:
    """Validate ``[grid.estimation]`` against the meters' locations and the feeder's ids."""
    if not isinstance(table, dict):
        sink.error(path, "expected a table")
        return None
    before = len(sink.issues)
    check_keys(sink, path, table, _KEYS)
    feeder_raw = take(sink, path, table, "feeder", str)
    feeder = config_dir / feeder_raw if feeder_raw is not None else None
    problem = path_problem(feeder, directory=False) if feeder is not None else None
    if problem is not None:
        # A NUL failed in open() (a traceback); /dev/zero was read until memory ran out.
        sink.error(join(path, "feeder"), problem)
        feeder = None
    ids = _feeder_ids(sink, join(path, "feeder"), feeder) if feeder is not None else None
    nodes, lines, busbar = ids if ids is not None else (None, None, None)

    period = ranged(sink, path, table, "period", 5.0, 0.5, 3600.0, unit="seconds")
    u_min = ranged(sink, path, table, "u_min_pu", 0.90, 0.5, 1.5)
    u_max = ranged(sink, path, table, "u_max_pu", 1.10, 0.5, 1.5)
    if u_min >= u_max:
        sink.error(join(path, "u_min_pu"), f"must be below u_max_pu ({u_max}), got {u_min}")
    located, heads = _locate_meters(sink, path, meters, nodes, lines, busbar)
    conns = _connections(sink, path, table, nodes)
    # Built before the verdict so every setting is checked; a refused config is never returned,
    # so the stand-ins for a missing feeder or head meter are never seen.
    settings = EstimationConfig(
        feeder=feeder or config_dir,
        period=period,
        u_min_pu=u_min,
        u_max_pu=u_max,
        loading_max_pct=ranged(sink, path, table, "loading_max_pct", 100.0, 1.0, 1000.0),
        hysteresis_pu=ranged(sink, path, table, "hysteresis_pu", 0.005, 0.0, 0.1),
        hysteresis_pct=ranged(sink, path, table, "hysteresis_pct", 2.0, 0.0, 50.0),
        balance_iterations=integer_ranged(sink, path, table, "balance_iterations", 3, 0, 20),
        max_age=ranged(sink, path, table, "max_age", 3.0 * period, 0.1, 86400.0, unit="seconds"),
        utc_offset_h=ranged(sink, path, table, "utc_offset_h", 0.0, -14.0, 14.0, unit="h"),
        latitude_deg=ranged(sink, path, table, "latitude_deg", 52.0, -90.0, 90.0),
        longitude_deg=ranged(sink, path, table, "longitude_deg", 0.0, -180.0, 180.0),
        clear_sky_index=ranged(sink, path, table, "clear_sky_index", 0.8, 0.0, 1.2),
        pv_performance_ratio=ranged(sink, path, table, "pv_performance_ratio", 0.85, 0.1, 1.0),
        hints=bool(take(sink, path, table, "hints", bool, True)),
        publish_nodes=bool(take(sink, path, table, "publish_nodes", bool, False)),
        connections=tuple(conns),
        meters=located,
        head_meter=heads[0] if heads else "",
    )
    if len(sink.issues) > before or feeder is None or not heads:
        return None
    return settings


def _locate_meters(
    sink: IssueSink,
    path: str,
    meters: Mapping[str, MeterLocation],
    nodes: set[int] | None,
    lines: set[int] | None,
    busbar: int | None,
) -> tuple[dict[str, MeterLocation], list[str]]:
    """The meters the estimator uses, checked against the feeder's ids; the head meter(s)."""
    located: dict[str, MeterLocation] = {}
    heads: list[str] = []
    for name, loc in meters.items():
        mpath = f"grid.meters.{name}"
        if loc.node is not None and nodes is not None and loc.node not in nodes:
            sink.error(join(mpath, "node"), f"no node {loc.node} in the feeder file")
        if loc.line is not None and lines is not None and loc.line not in lines:
            sink.error(join(mpath, "line"), f"no line {loc.line} in the feeder file")
        if loc.node is not None and loc.node == busbar:
            heads.append(name)
        located[name] = loc
    if busbar is not None and len(heads) != 1:
        found = ", ".join(sorted(heads)) or "none"
        sink.error(
            path,
            f"exactly one meter must measure the feeder head (node = {busbar}, the LV busbar);"
            f" found: {found}",
        )
    return located, heads


def _connections(
    sink: IssueSink, path: str, table: Mapping[str, Any], nodes: set[int] | None
) -> list[Connection]:
    conns: list[Connection] = []
    ctable = take(sink, path, table, "connections", dict, {})
    for cname, ctab in (ctable or {}).items():
        c = _connection(sink, join(join(path, "connections"), cname), cname, ctab, nodes)
        if c is not None:
            conns.append(c)
    if not ctable and ctable is not None:
        sink.error(join(path, "connections"), "the estimator needs at least one connection point")
    return conns
