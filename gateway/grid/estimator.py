"""State estimation of an LV feeder from a few meters: pseudo-loads balanced to the measurements,
then the load flow.

Every cycle (see docs/estimation.md for the method and its measured errors):

1. Connections with a node meter take its measured P/Q; the others take pseudo-loads
   (:mod:`gateway.grid.pseudo_loads`).
2. Each *flow meter* (the head meter at the busbar and every cable-cabinet meter on a line) owns
   a zone: the unmetered connections below it that are not below a deeper flow meter.
3. Per zone and phase, the mismatch between the measured flow and the load flow's flow at that
   meter, minus what the flow meters directly below it will correct themselves, is spread over
   the zone's connections on that phase in proportion to their gross pseudo-power (consumption
   plus PV). The load flow is re-run and the correction repeated ``balance_iterations`` times,
   so the losses and voltage dependence are accounted for by the load flow itself.
4. Voltages are scaled per phase by measured/estimated head voltage, which carries a medium-
   voltage deviation the source model does not know into every node (first order).

No I/O here: the daemon feeds readings in and publishes what comes out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.grid.estimation_config import EstimationConfig
from gateway.grid.pseudo_loads import PseudoLoadModel, PseudoLoads
from gateway.native.feeder_model import A_OP, BASE_POWER_1P, ComplexArray, FloatArray
from gateway.native.loadflow import Feeder, Loads
from gateway.native.loadflow_result import FlowResult

log = logging.getLogger(__name__)

PHASE_NAMES: Final = "abc"
HEAD: Final = -1  # zone owner id of the head meter
# A zone's correction is spread by gross power, plus this floor (W) so that a zone whose
# pseudo-loads are all zero at this instant can still take a mismatch.
_WEIGHT_FLOOR_W: Final = 20.0
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class MeterReading:
    """One meter's values mapped onto the feeder's phases a, b, c; NaN where it does not measure.

    ``p_w``/``q_var`` are what flows into the feeder at a node meter, or away from the busbar
    through a line meter; ``u_v`` is the phase-to-neutral voltage at the meter.
    """

    p_w: FloatArray
    q_var: FloatArray
    u_v: FloatArray


@dataclass(frozen=True, eq=False)
class Estimate:
    """One cycle's result. With ``converged`` False every array is NaN: never a stale state."""

    t: float
    converged: bool
    iterations: int
    balance_rounds: int
    node_ids: IntArray
    line_ids: IntArray
    u_pu: FloatArray  # [nodes, 3], head voltage correction applied
    u_volts: FloatArray
    unbalance: FloatArray  # [nodes] |U2|/|U1|
    loading_pct: FloatArray  # [lines]
    line_p_w: FloatArray  # [lines, 3] at the end nearer the busbar, away from it positive
    losses_w: float
    head_residual_w: FloatArray  # [3] measured minus estimated head P after balancing
    conn_p_w: FloatArray  # [connections, 3] the P/Q the final load flow used
    conn_q_var: FloatArray
    pseudo: PseudoLoads
    measured_meters: tuple[str, ...]
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The ``estimate`` body: extremes per phase with their node ids, unbalance, loading."""
        body: dict[str, Any] = {
            "device": "feeder",
            "t": self.t,
            "converged": self.converged,
            "iterations": self.iterations,
            "balance_rounds": self.balance_rounds,
            "meters": list(self.measured_meters),
        }
        if not self.converged:
            body["reason"] = self.reason or "load flow did not converge"
            return body
        u = self.u_pu
        for ph, name in enumerate(PHASE_NAMES):
            lo, hi = int(np.argmin(u[:, ph])), int(np.argmax(u[:, ph]))
            body[f"u_min_{name}"] = [round(float(u[lo, ph]), 5), int(self.node_ids[lo])]
            body[f"u_max_{name}"] = [round(float(u[hi, ph]), 5), int(self.node_ids[hi])]
        k = int(np.argmax(self.unbalance))
        body["unbalance_max"] = [round(float(self.unbalance[k]), 5), int(self.node_ids[k])]
        finite = np.where(np.isfinite(self.loading_pct), self.loading_pct, -np.inf)
        li = int(np.argmax(finite))
        body["loading_max_pct"] = [round(float(self.loading_pct[li]), 2), int(self.line_ids[li])]
        body["losses_w"] = round(self.losses_w, 1)
        body["head_residual_w"] = [round(float(x), 1) for x in self.head_residual_w]
        return body


def _unbalance(v: ComplexArray) -> FloatArray:
    a = A_OP
    v1 = (v[:, 0] + a * v[:, 1] + a * a * v[:, 2]) / 3.0
    v2 = (v[:, 0] + a * a * v[:, 1] + a * v[:, 2]) / 3.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.abs(v2) / np.abs(v1)
    return out


class Estimator:
    """Owns the feeder model, the zones and the pseudo-load model of one configured feeder."""

    def __init__(self, cfg: EstimationConfig, feeder: Feeder | None = None) -> None:
        self.cfg = cfg
        conns = cfg.connections
        node_meters = {
            n: loc.node
            for n, loc in cfg.meters.items()
            if loc.node is not None and n != cfg.head_meter
        }
        inj = sorted({c.node for c in conns} | {int(x) for x in node_meters.values() if x})
        self.feeder = feeder or Feeder.from_pgm_json(cfg.feeder, injection_nodes=inj)
        if feeder is not None:
            missing = set(inj) - {int(x) for x in feeder.injection_node_ids}
            if missing:
                raise ValueError(f"feeder lacks injection nodes {sorted(missing)}")
        m = self.feeder.model
        self._zero_loads = Loads.zeros(m.n_loads)
        node_index = {int(nid): i for i, nid in enumerate(m.node_ids)}
        inj_row = {int(nid): r for r, nid in enumerate(self.feeder.injection_node_ids)}
        self._n_inj = len(self.feeder.injection_node_ids)
        self._conn_row = np.array([inj_row[c.node] for c in conns], dtype=np.int64)
        self._conn_node = np.array([node_index[c.node] for c in conns], dtype=np.int64)
        self._conn_phase = np.zeros((len(conns), 3))
        for i, c in enumerate(conns):
            for ph in c.phases:
                self._conn_phase[i, PHASE_NAMES.index(ph)] = 1.0 / len(c.phases)
        self._node_meter_row = {n: inj_row[int(node)] for n, node in node_meters.items() if node}
        # Connections whose node has its own meter: the meter replaces their pseudo-loads.
        self._conn_meter = [
            next((n for n, node in node_meters.items() if node == c.node), None) for c in conns
        ]
        line_index = {int(lid): k for k, lid in enumerate(m.line_ids)}
        self._line_meter_node = {
            n: line_index[int(loc.line)] + 1
            for n, loc in cfg.meters.items()
            if loc.line is not None
        }
        self._pseudo = PseudoLoadModel(cfg, conns)
        self._zones_cache: dict[frozenset[str], IntArray] = {}

    # ---- zones -----------------------------------------------------------------------------

    def _owner(self, active: frozenset[str]) -> IntArray:
        """For every node, the index (into the sorted active line meters) of the nearest flow
        meter above it, or HEAD."""
        cached = self._zones_cache.get(active)
        if cached is not None:
            return cached
        m = self.feeder.model
        names = sorted(n for n in active if n in self._line_meter_node)
        at_node = {self._line_meter_node[n]: k for k, n in enumerate(names)}
        owner = np.full(m.n_nodes, HEAD, dtype=np.int64)
        parent = m.parent
        for i in range(1, m.n_nodes):  # breadth-first order: a parent comes before its children
            owner[i] = at_node.get(i, owner[parent[i]])
        self._zones_cache[active] = owner
        return owner

    # ---- flows -----------------------------------------------------------------------------

    @staticmethod
    def _head_flow(res: FlowResult) -> ComplexArray:
        out: ComplexArray = res.v[0] * np.conj(res.j[0]) * BASE_POWER_1P
        return out

    def _line_flows(self, res: FlowResult) -> ComplexArray:
        rev = self.feeder.model.line_reversed[:, None]
        out: ComplexArray = np.where(rev, res.s_to, res.s_from)
        return out

    # ---- the cycle -------------------------------------------------------------------------

    def estimate(self, t: float, readings: Mapping[str, MeterReading]) -> Estimate:
        """One estimation at epoch ``t`` from the meters' latest fresh readings.

        ``readings`` holds only meters with fresh GOOD values; the head meter must be among them.
        """
        cfg = self.cfg
        pseudo = self._pseudo.at(t)
        n_conn = len(cfg.connections)
        share = self._conn_phase
        p = pseudo.net_w[:, None] * share
        q = pseudo.load_var[:, None] * share
        weight_p = (pseudo.load_w + pseudo.pv_w + _WEIGHT_FLOOR_W)[:, None] * share
        weight_q = (pseudo.load_var + _WEIGHT_FLOOR_W)[:, None] * share
        free = np.array([self._conn_meter[i] not in readings for i in range(n_conn)])
        # Metered connections: their meter's injection stands for them; their rows are zero.
        p[~free] = 0.0
        q[~free] = 0.0
        meter_p = np.zeros((self._n_inj, 3))
        meter_q = np.zeros((self._n_inj, 3))
        for name, row in self._node_meter_row.items():
            r = readings.get(name)
            if r is not None:
                meter_p[row] += np.nan_to_num(r.p_w)
                meter_q[row] += np.nan_to_num(r.q_var)
        head = readings.get(cfg.head_meter)
        active = frozenset(n for n in self._line_meter_node if n in readings)
        owner = self._owner(active)
        names = sorted(active)
        # Zone of each connection (HEAD or a line meter's index); children of each zone.
        conn_zone = owner[self._conn_node]
        zone_parent = {
            k: int(owner[self.feeder.model.parent[self._line_meter_node[n]]])
            for k, n in enumerate(names)
        }
        res = self._solve(p, q, meter_p, meter_q)
        rounds = 0
        for _ in range(cfg.balance_iterations if head is not None else 0):
            if not bool(res.converged):
                break
            flows = self._line_flows(res)
            mismatch: dict[int, ComplexArray] = {
                HEAD: np.nan_to_num(head.p_w + 1j * head.q_var - self._head_flow(res))
                if head is not None
                else np.zeros(3, dtype=np.complex128)
            }
            for k, n in enumerate(names):
                r = readings[n]
                calc = flows[self._line_meter_node[n] - 1]
                mismatch[k] = np.nan_to_num(r.p_w + 1j * r.q_var - calc)
            own = dict(mismatch)
            for k, par in zone_parent.items():
                own[par] = own[par] - mismatch[k]
            for zone, d in own.items():
                sel = (conn_zone == zone) & free
                for ph in range(3):
                    wp = weight_p[sel, ph]
                    wq = weight_q[sel, ph]
                    if wp.sum() > 0:
                        p[sel, ph] += d[ph].real * wp / wp.sum()
                    if wq.sum() > 0:
                        q[sel, ph] += d[ph].imag * wq / wq.sum()
            res = self._solve(p, q, meter_p, meter_q)
            rounds += 1
        return self._result(t, res, rounds, readings, p, q, pseudo)

    def _solve(
        self, p: FloatArray, q: FloatArray, meter_p: FloatArray, meter_q: FloatArray
    ) -> FlowResult:
        node_p = meter_p.copy()
        node_q = meter_q.copy()
        np.add.at(node_p, self._conn_row, p)
        np.add.at(node_q, self._conn_row, q)
        return self.feeder.solve(self._zero_loads, node_power=Loads(node_p, node_q))

    def node_power(self, est: Estimate) -> Loads:
        """The injection-node powers the estimate's final load flow used (for sensitivities)."""
        node_p = np.zeros((self._n_inj, 3))
        node_q = np.zeros((self._n_inj, 3))
        np.add.at(node_p, self._conn_row, est.conn_p_w)
        np.add.at(node_q, self._conn_row, est.conn_q_var)
        for name, p in est.extra.get("meter_p", {}).items():
            node_p[self._node_meter_row[name]] += p
        for name, q in est.extra.get("meter_q", {}).items():
            node_q[self._node_meter_row[name]] += q
        return Loads(node_p, node_q)

    @property
    def zero_loads(self) -> Loads:
        return self._zero_loads

    def _result(
        self,
        t: float,
        res: FlowResult,
        rounds: int,
        readings: Mapping[str, MeterReading],
        p: FloatArray,
        q: FloatArray,
        pseudo: PseudoLoads,
    ) -> Estimate:
        m = self.feeder.model
        head = readings.get(self.cfg.head_meter)
        ok = bool(res.converged)
        v = res.v.copy()
        residual = np.full(3, np.nan)
        if ok and head is not None:
            residual = head.p_w - self._head_flow(res).real
            ratio = head.u_v / (np.abs(v[0]) * m.base_v)
            v *= np.where(np.isfinite(ratio), ratio, 1.0)[None, :]
        elif not ok:
            log.warning("feeder %s: estimate at %.0f did not converge", m.name, t)
        u = np.abs(v)
        meter_p = {n: np.nan_to_num(readings[n].p_w) for n in self._node_meter_row if n in readings}
        meter_q = {
            n: np.nan_to_num(readings[n].q_var) for n in self._node_meter_row if n in readings
        }
        return Estimate(
            t=t,
            converged=ok,
            iterations=int(res.iterations),
            balance_rounds=rounds,
            node_ids=m.node_ids,
            line_ids=m.line_ids,
            u_pu=u,
            u_volts=u * m.base_v,
            unbalance=_unbalance(v),
            loading_pct=res.loading_pct,
            line_p_w=self._line_flows(res).real,
            losses_w=float(res.losses_w),
            head_residual_w=np.asarray(residual, dtype=np.float64),
            conn_p_w=p,
            conn_q_var=q,
            pseudo=pseudo,
            measured_meters=tuple(sorted(readings)),
            reason="" if ok else f"load flow did not converge in {int(res.iterations)} iterations",
            extra={"meter_p": meter_p, "meter_q": meter_q},
        )
