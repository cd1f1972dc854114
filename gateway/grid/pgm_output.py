"""Load flow results and load updates in power-grid-model's dataset format.

Output rows carry the attributes power-grid-model writes for node, line, transformer and source,
so its own ``json_deserialize`` and tooling read them. Symmetric results hold one value per
attribute (three-phase totals, line-to-line voltage); asymmetric ones arrays of three.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gateway.config.issues import IssueSink
from gateway.native.feeder_model import BASE_POWER_1P, LOAD_COMPONENTS, SQRT3, FeederModel
from gateway.native.loadflow import Loads
from gateway.native.loadflow_result import FlowResult
from gateway.native.pgm_json import Components


def _v(x: Any, symmetric: bool, total: bool = False) -> Any:
    arr = np.asarray(x, dtype=np.float64)
    if symmetric:
        return float(arr.sum() if total else arr[0])
    return [float(v) for v in arr]


def _scenario(res: FlowResult, t: int | None) -> Components:
    """One output scenario: step ``t`` of a batch, or the single solve when ``t`` is None."""

    def pick(a: Any) -> Any:
        return a if t is None else a[t]

    ok = bool(pick(res.converged))
    out: Components = {
        "node": _nodes(res, pick, ok),
        "line": _lines(res, pick, ok),
        "source": _sources(res, pick, ok),
    }
    if res.model.head.transformer_id is not None:
        out["transformer"] = _transformers(res, pick, ok)
    return out


def _nodes(res: FlowResult, pick: Callable[[Any], Any], ok: bool) -> list[dict[str, Any]]:
    """The source's HV node (when there is a transformer), then every LV node."""
    m = res.model
    sym = res.symmetric
    v = pick(res.v)
    u_scale = m.u_rated if sym else m.u_rated / SQRT3
    nodes = []
    v_hv = pick(res.head.v_source_node)
    if m.head.transformer_id is not None:
        hv_scale = m.head.source_u_rated if sym else m.head.source_u_rated / SQRT3
        nodes.append(
            {
                "id": m.head.source_node_id,
                "energized": int(ok),
                "u_pu": _v(np.abs(v_hv), sym),
                "u": _v(np.abs(v_hv) * hv_scale, sym),
                "u_angle": _v(np.angle(v_hv), sym),
            }
        )
    for i, nid in enumerate(m.node_ids):
        nodes.append(
            {
                "id": int(nid),
                "energized": int(ok),
                "u_pu": _v(np.abs(v[i]), sym),
                "u": _v(np.abs(v[i]) * u_scale, sym),
                "u_angle": _v(np.angle(v[i]), sym),
            }
        )
    return nodes


def _lines(res: FlowResult, pick: Callable[[Any], Any], ok: bool) -> list[dict[str, Any]]:
    sym = res.symmetric
    i_from, i_to = pick(res.i_from), pick(res.i_to)
    s_from, s_to = pick(res.s_from), pick(res.s_to)
    loading = pick(res.loading)
    lines = []
    for k, lid in enumerate(res.model.line_ids):
        lines.append(
            {
                "id": int(lid),
                "energized": int(ok),
                "loading": float(loading[k]),
                "p_from": _v(s_from[k].real, sym, True),
                "q_from": _v(s_from[k].imag, sym, True),
                "i_from": _v(i_from[k], sym),
                "s_from": _v(np.abs(s_from[k]), sym, True),
                "p_to": _v(s_to[k].real, sym, True),
                "q_to": _v(s_to[k].imag, sym, True),
                "i_to": _v(i_to[k], sym),
                "s_to": _v(np.abs(s_to[k]), sym, True),
            }
        )
    return lines


def _base_i_hv(res: FlowResult) -> float:
    """Current base on the source's side, A."""
    return 1e6 / res.model.head.source_u_rated / SQRT3


def _sources(res: FlowResult, pick: Callable[[Any], Any], ok: bool) -> list[dict[str, Any]]:
    sym = res.symmetric
    i_src = pick(res.head.i_source)
    s_src = pick(res.head.v_source_node) * np.conj(i_src) * BASE_POWER_1P
    return [
        {
            "id": res.model.head.source_id,
            "energized": int(ok),
            "p": _v(s_src.real, sym, True),
            "q": _v(s_src.imag, sym, True),
            "i": _v(np.abs(i_src) * _base_i_hv(res), sym),
            "s": _v(np.abs(s_src), sym, True),
        }
    ]


def _transformers(res: FlowResult, pick: Callable[[Any], Any], ok: bool) -> list[dict[str, Any]]:
    m = res.model
    sym = res.symmetric
    hd = res.head
    sf = pick(hd.v_source_node) * np.conj(pick(hd.i_trafo_from)) * BASE_POWER_1P
    st = pick(res.v)[0] * np.conj(pick(hd.i_trafo_to)) * BASE_POWER_1P
    return [
        {
            "id": m.head.transformer_id,
            "energized": int(ok),
            "loading": float(max(np.abs(sf).sum(), np.abs(st).sum()) / m.head.transformer_sn),
            "p_from": _v(sf.real, sym, True),
            "q_from": _v(sf.imag, sym, True),
            "i_from": _v(np.abs(pick(hd.i_trafo_from)) * _base_i_hv(res), sym),
            "p_to": _v(st.real, sym, True),
            "q_to": _v(st.imag, sym, True),
            "i_to": _v(np.abs(pick(hd.i_trafo_to)) * m.base_i, sym),
        }
    ]


def results_to_pgm(res: FlowResult) -> list[Components]:
    """One output scenario per step (one for a single solve)."""
    if res.v.ndim == 2:
        return [_scenario(res, None)]
    return [_scenario(res, t) for t in range(res.v.shape[0])]


def apply_updates(model: FeederModel, scenarios: list[Components], sink: IssueSink) -> Loads:
    """Loads [T, n_loads, 3] from the model's loads changed by each update scenario.

    Only load components may change (p_specified, q_specified, status); anything else is an
    issue, since this solver keeps the topology and the source fixed for a batch.
    """
    index = {
        (c, int(i)): k
        for k, (c, i) in enumerate(zip(model.load_component, model.load_ids, strict=True))
    }
    steps = len(scenarios)
    p = np.repeat(model.load_p[None], steps, axis=0)
    q = np.repeat(model.load_q[None], steps, axis=0)
    on = np.repeat(model.load_status[None], steps, axis=0)
    for t, sc in enumerate(scenarios):
        for comp, rows in sc.items():
            if comp not in LOAD_COMPONENTS:
                sink.error(f"data[{t}].{comp}", "only load and generator updates are supported")
                continue
            sign = LOAD_COMPONENTS[comp]
            for row in rows:
                k = index.get((comp, int(row.get("id", -1))))
                if k is None:
                    sink.error(f"data[{t}].{comp}[id={row.get('id')}]", "unknown id")
                    continue
                for attr, target in (("p_specified", p), ("q_specified", q)):
                    if attr in row:
                        val = row[attr]
                        per = [val / 3] * 3 if comp.startswith("sym") else list(val)
                        target[t, k] = [
                            sign * x if not math.isnan(x) else y
                            for x, y in zip(per, target[t, k], strict=True)
                        ]
                if "status" in row:
                    on[t, k] = row["status"] != 0
    mask = on[..., None]
    return Loads(p * mask, q * mask)
