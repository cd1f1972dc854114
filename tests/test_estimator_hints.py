"""Violations with hysteresis, and hints checked by applying them: the setpoints added to the
estimated operating point and solved again must remove the violation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gateway.grid.estimator import Estimate, Estimator
from gateway.grid.hints import plan
from gateway.grid.violations import FeederAlarms
from gateway.native.loadflow import Loads
from gateway.sim.lv_feeder import LvFeederModel
from tests.estimator_support import MIDSUMMER, estimation_config, readings

ALL = ["head", "cab1", "cab2", "cab3"]
NOON = MIDSUMMER + 12 * 3600 + 5


@pytest.fixture(scope="module")
def model() -> LvFeederModel:
    return LvFeederModel(seed=3, start=MIDSUMMER)


def _estimate(est: Estimator, model: LvFeederModel, t: float) -> Estimate:
    return est.estimate(t, readings(model.step(t), ALL))


def _apply(est: Estimator, e: Estimate, hint: dict) -> Loads:
    base = est.node_power(e)
    p = base.p.copy()
    row = {int(n): k for k, n in enumerate(est.feeder.injection_node_ids)}
    by_name = {c.name: c for c in est.cfg.connections}
    for sp in hint["setpoints"]:
        c = by_name[sp["connection"]]
        for ph in c.phases:
            p[row[c.node], "abc".index(ph)] += sp["delta_kw"] * 1e3 / len(c.phases)
    return Loads(p, base.q)


def test_voltage_hint_removes_the_over_voltage(model: LvFeederModel) -> None:
    probe = _estimate(Estimator(estimation_config(model, ALL)), model, NOON)
    limit = round(float(probe.u_pu.max()) - 0.004, 4)
    cfg = estimation_config(model, ALL, u_max_pu=limit, hysteresis_pu=0.001)
    est = Estimator(cfg)
    e = _estimate(est, model, NOON)
    violations = FeederAlarms(cfg).violations(e)
    assert violations and all(v.kind == "voltage_high" for v in violations)
    hints = plan(est, e, violations)
    assert len(hints) == len(violations)
    for v, hint in zip(violations, hints, strict=True):
        assert hint["advisory"] is True and hint["sufficient"] is True
        assert hint["setpoints"], hint
        for sp in hint["setpoints"]:
            assert sp["kind"] == "pv"
            assert sp["delta_kw"] > 0  # PV can only curtail
        res = est.feeder.solve(est.zero_loads, node_power=_apply(est, e, hint))
        node = int(np.flatnonzero(e.node_ids == v.element)[0])
        after = float(res.u_pu[node, v.phase])
        assert after < v.value
        assert after <= hint["target"] + 3e-4, (after, hint["target"])


def test_overload_hint_uses_a_charger_below_the_line(model: LvFeederModel) -> None:
    conns = model.connections()
    # Evening peak: chargers are the flexible load. The last house gets a 3-phase 11 kW wallbox.
    conns["load20055"] |= {"phases": "abc", "controllable": "charger", "max_kw": 11.0}
    t = MIDSUMMER + 19.5 * 3600
    probe = _estimate(Estimator(estimation_config(model, ALL, connections=conns)), model, t)
    worst = float(np.nanmax(probe.loading_pct))
    cfg = estimation_config(
        model, ALL, connections=conns, loading_max_pct=worst - 1.0, hysteresis_pct=0.5
    )
    est = Estimator(cfg)
    e = _estimate(est, model, t)
    (v,) = [x for x in FeederAlarms(cfg).violations(e) if x.kind == "line_overload"]
    (hint,) = plan(est, e, [v])
    k = int(np.flatnonzero(e.line_ids == v.element)[0])
    assert v.element == 10001  # the busbar's outgoing cable: the charger is below it
    (sp,) = hint["setpoints"]
    assert sp["connection"] == "load20055"
    assert -11.0 <= sp["delta_kw"] < 0  # an importing line: consume less
    res = est.feeder.solve(est.zero_loads, node_power=_apply(est, e, hint))
    assert float(res.loading_pct[k]) < v.value - 0.5
    assert hint["sufficient"] is True
    assert float(res.loading_pct[k]) <= hint["target"] + 0.3


def test_alarms_raise_once_and_clear_past_the_hysteresis(model: LvFeederModel) -> None:
    cfg = estimation_config(model, ALL, u_max_pu=1.08, hysteresis_pu=0.01)
    est = Estimator(cfg)
    e = _estimate(est, model, MIDSUMMER + 3 * 3600)
    alarms = FeederAlarms(cfg)

    def at(u: float) -> Estimate:
        v = e.u_pu.copy()
        v[:, 0] = 1.0
        v[17, 0] = u
        return dataclasses.replace(e, u_pu=v)

    def names(u: float) -> list[tuple[str, str, str | None]]:
        return [(x.alarm, x.state, x.cause) for x in alarms.check(at(u))]

    node = int(e.node_ids[17])
    assert names(1.05) == []
    assert names(1.09) == [("voltage_high", "raised", f"node {node}, 1 outside")]
    assert names(1.095) == []  # still high: no second event
    assert names(1.075) == []  # back inside, but within the hysteresis band
    assert names(1.069) == [("voltage_high", "cleared", f"node {node}")]
    assert names(1.075) == []
