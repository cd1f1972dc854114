"""Grid-serving hints: how much active power at which controllable connection removes a violation.

Advisory only: a hint is published (kind ``hint``) for an operator or a separate controller to
act on; nothing here, nor in the daemon, writes a setpoint to a device.

Voltage violations use the load flow's sensitivities d|U|/dP at the violating node and phase for
extra consumption at each controllable connection (central differences around the estimated
operating point, :meth:`Feeder.sensitivities`). A line overload uses the first-order fact that a
watt drawn below the line on phase p adds about 1/|U_p| amperes to it. Either way the plan is
greedy: the most effective connection first, each limited to what its kind can do (a PV inverter
can only curtail: consume more, up to max_kw; a charger or heat pump can shift by up to max_kw
either way), until the violation reaches its limit minus the hysteresis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from gateway.grid.estimator import PHASE_NAMES, Estimate, Estimator
from gateway.grid.violations import Violation
from gateway.native.feeder_model import FloatArray

_DELTA_W: Final = 200.0


@dataclass(frozen=True)
class Setpoint:
    connection: str
    node: int
    kind: str
    delta_kw: float  # change of consumption: positive = consume more / curtail PV
    effect_per_kw: float  # p.u. (voltage) or A (loading) per kW


def _limits(kind: str, max_kw: float) -> tuple[float, float]:
    return (0.0, max_kw) if kind == "pv" else (-max_kw, max_kw)


def _greedy(
    need: float, effects: FloatArray, bounds: list[tuple[float, float]]
) -> tuple[FloatArray, float]:
    """kW per controllable whose summed effect covers ``need`` (same unit as effect*kW)."""
    out = np.zeros(len(effects))
    remaining = need
    for i in np.argsort(-np.abs(effects)):
        if abs(remaining) < 1e-12 or effects[i] == 0:
            break
        lo, hi = bounds[i]
        out[i] = min(hi, max(lo, remaining / effects[i]))
        remaining -= out[i] * effects[i]
    return out, remaining


def plan(estimator: Estimator, est: Estimate, violations: list[Violation]) -> list[dict[str, Any]]:
    """One hint body per violation (empty when no controllable connection is configured)."""
    cfg = estimator.cfg
    ctrl = [i for i, c in enumerate(cfg.connections) if c.controllable is not None]
    if not ctrl or not violations or not est.converged:
        return []
    conns = [cfg.connections[i] for i in ctrl]
    nodes = sorted({c.node for c in conns})
    m = estimator.feeder.model
    node_index = {int(n): k for k, n in enumerate(m.node_ids)}
    bounds = [_limits(str(c.controllable), c.max_kw) for c in conns]
    sens = None
    out = []
    for v in violations:
        if v.kind == "line_overload":
            effects, need, target, phase = _line_effects(estimator, est, v, ctrl)
        else:
            phase = v.phase
            if sens is None:
                sens = estimator.feeder.sensitivities(
                    nodes, estimator.zero_loads, node_power=estimator.node_power(est),
                    delta_w=_DELTA_W,
                )  # fmt: skip
            row = {int(n): k for k, n in enumerate(sens.node_ids)}
            at = node_index[v.element]
            effects = np.array(
                [_du_dkw(sens.du_dp[row[c.node]], c.phases, at, v.phase) for c in conns]
            )
            margin = cfg.hysteresis_pu
            target = v.limit - margin if v.kind == "voltage_high" else v.limit + margin
            need = target - v.value
        kw, short = _greedy(need, effects, bounds)
        setpoints = [
            Setpoint(c.name, c.node, str(c.controllable), round(float(k), 3), float(e))
            for c, k, e in zip(conns, kw, effects, strict=True)
            if abs(k) > 1e-6
        ]
        out.append(
            {
                "device": "feeder",
                "advisory": True,
                "violation": v.kind,
                "element": v.element,
                "phase": PHASE_NAMES[phase],
                "value": round(v.value, 5),
                "target": round(target, 5),
                "sufficient": bool(abs(short) <= 1e-6 * max(1.0, abs(need))),
                "setpoints": [s.__dict__ for s in setpoints],
            }
        )
    return out


def _du_dkw(du_dp: FloatArray, phases: str, node: int, phase: int) -> float:
    """p.u. per kW spread evenly over the connection's phases."""
    return (
        float(sum(du_dp[PHASE_NAMES.index(ph), node, phase] for ph in phases)) / len(phases) * 1e3
    )


def _line_effects(
    estimator: Estimator, est: Estimate, v: Violation, ctrl: list[int]
) -> tuple[FloatArray, float, float, int]:
    """Effect (A per kW of extra consumption) on the worst phase of the overloaded line, the
    current change needed (A), the target loading (%) and the phase (the most loaded one)."""
    cfg = estimator.cfg
    m = estimator.feeder.model
    k = int(np.flatnonzero(m.line_ids == v.element)[0])
    child = k + 1
    below = np.zeros(m.n_nodes, dtype=bool)
    below[child] = True
    for i in range(child + 1, m.n_nodes):  # breadth-first: parents come first
        below[i] = below[m.parent[i]]
    p = est.line_p_w[k]
    ph = int(np.argmax(np.abs(p)))
    i_n = float(m.line_i_n[k])
    current = v.value / 100.0 * i_n
    target_a = (cfg.loading_max_pct - cfg.hysteresis_pct) / 100.0 * i_n
    u_v = float(est.u_volts[m.parent[child], ph])
    sign = 1.0 if p[ph] >= 0 else -1.0  # importing: more consumption, more current
    node_index = {int(n): j for j, n in enumerate(m.node_ids)}
    effects = []
    for i in ctrl:
        c = cfg.connections[i]
        share = c.phases.count(PHASE_NAMES[ph]) / len(c.phases)
        on = below[node_index[c.node]]
        effects.append(sign * share * 1000.0 / u_v if on else 0.0)
    return np.array(effects), target_a - current, target_a / i_n * 100.0, ph
