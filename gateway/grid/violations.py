"""Limit violations of an estimated feeder, as alarms with hysteresis, aggregated per feeder.

With 906 nodes x 3 phases, one alarm state per node would flood the spool whenever a cloud passes
and would not tell an operator more than the worst node does. So there is one state per
(kind, phase): ``voltage_high``/``voltage_low`` per phase and ``line_overload`` for the feeder,
each raised when the worst node (line) crosses the limit and cleared when it is back inside by the
hysteresis; the event names the worst node (line) and how many are outside. A cycle whose load
flow failed neither raises nor clears these (like a BAD reading); it raises ``estimate_failed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from gateway.core.alarms import AlarmEvent
from gateway.grid.estimation_config import EstimationConfig
from gateway.grid.estimator import PHASE_NAMES, Estimate

DEVICE: Final = "feeder"


@dataclass(frozen=True)
class Violation:
    """One active violation: what, where (node or line id, phase index), value and limit."""

    kind: str  # "voltage_high" | "voltage_low" | "line_overload"
    element: int
    phase: int
    value: float
    limit: float


class FeederAlarms:
    def __init__(self, cfg: EstimationConfig) -> None:
        self._cfg = cfg
        self._on: dict[tuple[str, int], bool] = {}
        self._failed = False

    def violations(self, est: Estimate) -> list[Violation]:
        """Violations at this instant (no hysteresis): the worst element per kind and phase."""
        if not est.converged:
            return []
        cfg = self._cfg
        out = []
        u = est.u_pu
        for ph in range(3):
            hi, lo = int(np.argmax(u[:, ph])), int(np.argmin(u[:, ph]))
            if u[hi, ph] > cfg.u_max_pu:
                out.append(
                    Violation("voltage_high", int(est.node_ids[hi]), ph, u[hi, ph], cfg.u_max_pu)
                )
            if u[lo, ph] < cfg.u_min_pu:
                out.append(
                    Violation("voltage_low", int(est.node_ids[lo]), ph, u[lo, ph], cfg.u_min_pu)
                )
        load = np.where(np.isfinite(est.loading_pct), est.loading_pct, -np.inf)
        k = int(np.argmax(load))
        if load[k] > cfg.loading_max_pct:
            out.append(
                Violation(
                    "line_overload", int(est.line_ids[k]), -1, float(load[k]), cfg.loading_max_pct
                )
            )
        return out

    def check(self, est: Estimate) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        if not est.converged:
            if not self._failed:
                self._failed = True
                events.append(
                    AlarmEvent("estimate_failed", "raised", DEVICE, est.t, cause=est.reason)
                )
            return events
        if self._failed:
            self._failed = False
            events.append(AlarmEvent("estimate_failed", "cleared", DEVICE, est.t))
        cfg = self._cfg
        u = est.u_pu
        for ph, name in enumerate(PHASE_NAMES):
            col = u[:, ph]
            hi, lo = int(np.argmax(col)), int(np.argmin(col))
            events += self._one(
                ("voltage_high", ph), est, f"u_{name}", float(col[hi]), cfg.u_max_pu,
                raise_=col[hi] > cfg.u_max_pu, clear=col[hi] <= cfg.u_max_pu - cfg.hysteresis_pu,
                where=f"node {int(est.node_ids[hi])}", count=int((col > cfg.u_max_pu).sum()),
            )  # fmt: skip
            events += self._one(
                ("voltage_low", ph), est, f"u_{name}", float(col[lo]), cfg.u_min_pu,
                raise_=col[lo] < cfg.u_min_pu, clear=col[lo] >= cfg.u_min_pu + cfg.hysteresis_pu,
                where=f"node {int(est.node_ids[lo])}", count=int((col < cfg.u_min_pu).sum()),
            )  # fmt: skip
        load = np.where(np.isfinite(est.loading_pct), est.loading_pct, -np.inf)
        k = int(np.argmax(load))
        lim = cfg.loading_max_pct
        events += self._one(
            ("line_overload", -1), est, "loading_pct", float(load[k]), lim,
            raise_=load[k] > lim, clear=load[k] <= lim - cfg.hysteresis_pct,
            where=f"line {int(est.line_ids[k])}", count=int((load > lim).sum()),
        )  # fmt: skip
        return events

    def _one(
        self,
        key: tuple[str, int],
        est: Estimate,
        point: str,
        value: float,
        limit: float,
        *,
        raise_: bool,
        clear: bool,
        where: str,
        count: int,
    ) -> list[AlarmEvent]:
        on = self._on.get(key, False)
        if not on and raise_:
            self._on[key] = True
            cause = f"{where}, {count} outside"
            return [AlarmEvent(key[0], "raised", DEVICE, est.t, point, value, limit, cause)]
        if on and clear:
            self._on[key] = False
            return [AlarmEvent(key[0], "cleared", DEVICE, est.t, point, value, limit, where)]
        return []

    @property
    def active(self) -> list[tuple[str, int]]:
        return [k for k, on in self._on.items() if on]
