"""Build a validated :class:`FeederModel` from power-grid-model's JSON input format.

What is supported, and why it is enough for a low-voltage feeder: ``node``; ``line`` (sequence
data r1/x1/c1/tan1, r0/x0/c0/tan0, ``i_n``); exactly one ``source`` (u_ref, u_ref_angle, sk,
rx_ratio, z01_ratio); at most one ``transformer`` from the source's node to the LV busbar
(vector groups Dyn and YNyn, fixed tap); ``sym_load``/``asym_load`` and ``sym_gen``/``asym_gen``
of type const_power, const_impedance or const_current. Sensors are ignored. Every problem is
collected with the component id (``line[id=17].r1``) and raised as one ConfigError.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway.config.issues import IssueSink
from gateway.native import pgm_json
from gateway.native.feeder_head import build_head
from gateway.native.feeder_model import (
    BASE_POWER_3P,
    IGNORED_SUFFIX,
    LOAD_COMPONENTS,
    LOAD_TYPES,
    SUPPORTED,
    SYSTEM_FREQUENCY,
    ComplexArray,
    FeederModel,
)
from gateway.native.pgm_json import Components
from gateway.native.pgm_rows import RowReader, check_ids


@dataclass
class _Line:
    lid: int
    a: int
    b: int
    z1: complex
    zm: complex
    y1: complex
    ym: complex
    i_n: float


def _lines(sink: IssueSink, comps: Components, u_rated: dict[int, float]) -> list[_Line]:
    out: list[_Line] = []
    for i, row in enumerate(comps.get("line", [])):
        rd = RowReader(sink, "line", i, row)
        a, b = rd.integer("from_node"), rd.integer("to_node")
        for attr, n in (("from_node", a), ("to_node", b)):
            if n not in u_rated:
                rd.error(attr, f"unknown node {n}")
        if a == b:
            rd.error("to_node", "a line must join two different nodes")
        r1, x1, r0, x0 = rd.num("r1"), rd.num("x1"), rd.num("r0"), rd.num("x0")
        for attr, v in (("r1", r1), ("r0", r0)):
            if v < 0:
                rd.error(attr, f"must not be negative, got {v}")
        if not abs(complex(r1, x1)) > 0:
            rd.error("r1", "positive-sequence impedance r1 + j x1 must be non-zero")
        if not abs(complex(r0, x0)) > 0:
            rd.error("r0", "zero-sequence impedance r0 + j x0 must be non-zero")
        c1, c0 = rd.num("c1", 0.0), rd.num("c0", 0.0)
        tan1, tan0 = rd.num("tan1", 0.0), rd.num("tan0", 0.0)
        i_n = rd.num("i_n", math.nan)
        if "i_n" in row and not i_n > 0:
            rd.error("i_n", f"must be positive, got {i_n}")
        if rd.integer("from_status", 1) == 0 or rd.integer("to_status", 1) == 0:
            continue  # an open line is not part of the feeder's tree
        if a not in u_rated or b not in u_rated or a == b:
            continue
        if u_rated[a] != u_rated[b]:
            rd.error("to_node", f"joins nodes of different u_rated ({u_rated[a]}, {u_rated[b]})")
            continue
        zb = u_rated[a] ** 2 / BASE_POWER_3P
        z1, z0 = complex(r1, x1) / zb, complex(r0, x0) / zb
        w = 2 * math.pi * SYSTEM_FREQUENCY
        y1 = w * c1 * complex(tan1, 1.0) * zb
        y0 = w * c0 * complex(tan0, 1.0) * zb
        out.append(_Line(rd.integer("id"), a, b, z1, (z0 - z1) / 3, y1 / 2, (y0 - y1) / 6, i_n))
    return out


def _tree(
    sink: IssueSink, root: int, lines: list[_Line], lv_nodes: set[int]
) -> tuple[list[int], list[int], list[_Line | None]]:
    """Breadth-first order from the busbar; a second path to a node is a mesh."""
    adj: dict[int, list[_Line]] = {n: [] for n in lv_nodes}
    for ln in lines:
        adj.setdefault(ln.a, []).append(ln)
        adj.setdefault(ln.b, []).append(ln)
    order = [root]
    index = {root: 0}
    parent = [-1]
    via: list[_Line | None] = [None]
    queue = deque([root])
    used: set[int] = set()
    while queue:
        n = queue.popleft()
        for ln in adj.get(n, []):
            if ln.lid in used:
                continue
            used.add(ln.lid)
            other = ln.b if ln.a == n else ln.a
            if other in index:
                sink.error(
                    f"line[id={ln.lid}]",
                    f"closes a mesh (node {other} is reached twice): this solver is for "
                    "radial feeders",
                )
                continue
            index[other] = len(order)
            order.append(other)
            parent.append(index[n])
            via.append(ln)
            queue.append(other)
    missing = sorted(lv_nodes - set(index))
    for n in missing:
        sink.error(
            f"node[id={n}]",
            "is not connected to the source (an island): this solver is for radial feeders "
            "fed from one source",
        )
    return order, parent, via


def _loads(
    sink: IssueSink, comps: Components, index: dict[int, int], hv: set[int]
) -> list[tuple[int, str, int, int, bool, list[float], list[float]]]:
    out = []
    for comp, sign in LOAD_COMPONENTS.items():
        for i, row in enumerate(comps.get(comp, [])):
            rd = RowReader(sink, comp, i, row)
            node = rd.integer("node")
            ltype = rd.integer("type", 0)
            if ltype not in LOAD_TYPES:
                rd.error("type", f"unknown load type {ltype} (0, 1 or 2)")
            if comp.startswith("sym"):
                p = [rd.num("p_specified", 0.0) / 3] * 3
                q = [rd.num("q_specified", 0.0) / 3] * 3
            else:
                p = rd.triple("p_specified") if "p_specified" in row else [0.0] * 3
                q = rd.triple("q_specified") if "q_specified" in row else [0.0] * 3
            if node in hv:
                rd.error("node", f"node {node} is on the source side of the transformer")
            elif node not in index:
                rd.error("node", f"unknown node {node}")
                continue
            status = rd.integer("status", 1) != 0
            p = [sign * v for v in p]
            q = [sign * v for v in q]
            out.append((rd.integer("id"), comp, index.get(node, 0), ltype, status, p, q))
    return out


def build(comps: Components, name: str, sink: IssueSink) -> FeederModel | None:
    """Validate one input scenario and build the model; problems go to ``sink``."""
    for comp in comps:
        if comp not in SUPPORTED and not comp.endswith(IGNORED_SUFFIX):
            sink.error(comp, f"unsupported component (supported: {', '.join(SUPPORTED)})")
    check_ids(sink, comps)
    u_rated: dict[int, float] = {}
    for i, row in enumerate(comps.get("node", [])):
        rd = RowReader(sink, "node", i, row)
        nid = rd.integer("id")
        u_rated[nid] = rd.positive("u_rated")
    head, busbar = build_head(sink, comps, u_rated)
    lines = _lines(sink, comps, u_rated)
    if head is None or busbar is None:
        return None
    hv = {head.source_node_id} if head.transformer_id is not None else set()
    for ln in lines:
        if ln.a in hv or ln.b in hv:
            sink.error(f"line[id={ln.lid}]", "only the transformer may leave the source's node")
    lines = [ln for ln in lines if ln.a not in hv and ln.b not in hv]
    lv_nodes = set(u_rated) - hv
    order, parent, via = _tree(sink, busbar, lines, lv_nodes)
    index = {n: i for i, n in enumerate(order)}
    for ln in lines:
        if u_rated.get(ln.a) != u_rated[busbar]:
            sink.error(f"line[id={ln.lid}]", "LV lines must have the busbar's u_rated")
            break
    loads = _loads(sink, comps, index, hv)
    if sink:
        return None
    fed = via[1:]
    cx: Callable[[Any], ComplexArray] = lambda xs: np.array(list(xs), dtype=np.complex128)  # noqa: E731
    return FeederModel(
        name=name,
        node_ids=np.array(order, dtype=np.int64),
        parent=np.array(parent, dtype=np.int64),
        u_rated=u_rated[busbar],
        line_ids=np.array([ln.lid for ln in fed if ln], dtype=np.int64),
        line_reversed=np.array(
            [ln.a != order[parent[k + 1]] for k, ln in enumerate(fed) if ln], dtype=np.bool_
        ),
        line_z1=cx(ln.z1 for ln in fed if ln),
        line_zm=cx(ln.zm for ln in fed if ln),
        line_y1_half=cx(ln.y1 for ln in fed if ln),
        line_ym_half=cx(ln.ym for ln in fed if ln),
        line_i_n=np.array([ln.i_n for ln in fed if ln], dtype=np.float64),
        head=head,
        load_ids=np.array([x[0] for x in loads], dtype=np.int64),
        load_component=tuple(x[1] for x in loads),
        load_node=np.array([x[2] for x in loads], dtype=np.int64),
        load_type=np.array([x[3] for x in loads], dtype=np.int64),
        load_status=np.array([x[4] for x in loads], dtype=np.bool_),
        load_p=np.array([x[5] for x in loads], dtype=np.float64).reshape(-1, 3),
        load_q=np.array([x[6] for x in loads], dtype=np.float64).reshape(-1, 3),
    )


def load_feeder(path: Path) -> FeederModel:
    """Read, validate and build a feeder from a power-grid-model JSON input file."""
    sink = IssueSink(str(path))
    ds = pgm_json.load(path, sink)
    if not sink and (ds.is_batch or ds.dataset_type != "input"):
        sink.error("type", f"expected a single 'input' dataset, got type {ds.dataset_type!r}")
    model = build(ds.scenarios[0] if ds.scenarios else {}, path.stem, sink) if not sink else None
    sink.raise_if_any()
    assert model is not None  # build() reported why otherwise
    return model


__all__ = ["build", "load_feeder"]
