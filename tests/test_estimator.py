"""The estimator against the simulator's ground truth (a full load flow of the IEEE EU LV feeder
with every load known): only the configured meters are visible to it; every node is scored."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.grid.estimator import Estimator
from gateway.sim.lv_feeder import LvFeederModel
from tests.estimator_support import MIDSUMMER, estimation_config, readings

ALL = ["head", "cab1", "cab2", "cab3"]
MINUTES = range(0, 1440, 20)  # a simulated day, every 20 minutes


@pytest.fixture(scope="module")
def model() -> LvFeederModel:
    return LvFeederModel(seed=3, start=MIDSUMMER)


def _score(model: LvFeederModel, est: Estimator, meters: list[str]) -> tuple[float, float]:
    errs = []
    for minute in MINUTES:
        t = MIDSUMMER + minute * 60 + 13
        values = model.step(t)
        e = est.estimate(t, readings(values, meters))
        assert e.converged
        errs.append(np.abs(e.u_pu - model.truth(t).u_pu))
    a = np.array(errs)
    return float(a.max()), float(np.sqrt((a**2).mean()))


@pytest.fixture(scope="module")
def scores(model: LvFeederModel) -> dict[str, tuple[float, float]]:
    out = {}
    for label, meters, iters in (
        ("all", ALL, 3),
        ("head", ["head"], 3),
        ("all_unbalanced", ALL, 0),
    ):
        cfg = estimation_config(model, meters, balance_iterations=iters)
        out[label] = _score(model, Estimator(cfg), meters)
    for label, (mx, rms) in out.items():
        print(f"{label}: max {mx:.5f} p.u. ({mx * 240.2:.2f} V), rms {rms:.6f} p.u.")
    return out


def test_error_over_a_day_with_head_and_three_cabinets(scores: dict) -> None:
    mx, rms = scores["all"]
    assert mx < 0.02  # p.u.: under 5 V at the worst node and minute of the day
    assert rms < 0.0012


def test_cabinet_meters_and_balancing_each_reduce_the_error(scores: dict) -> None:
    assert scores["all"][1] < scores["head"][1]
    assert scores["all"][1] < 0.8 * scores["all_unbalanced"][1]


def test_balanced_flows_equal_the_measurements(model: LvFeederModel) -> None:
    cfg = estimation_config(model, ALL, balance_iterations=4)
    est = Estimator(cfg)
    t = MIDSUMMER + 12.5 * 3600
    values = model.step(t)
    e = est.estimate(t, readings(values, ALL))
    assert np.abs(e.head_residual_w).max() < 1.0  # W, of several kW
    lines = model.meter_locations()
    for n in ("cab1", "cab2", "cab3"):
        k = int(np.flatnonzero(e.line_ids == lines[n]["line"])[0])
        measured = [values[n][f"power_l{i}"] for i in (1, 2, 3)]
        assert np.abs(e.line_p_w[k] - measured).max() < 1.0, n


def test_summary_names_extremes_and_flags(model: LvFeederModel) -> None:
    est = Estimator(estimation_config(model, ALL))
    t = MIDSUMMER + 19 * 3600
    e = est.estimate(t, readings(model.step(t), ALL))
    body = e.summary()
    truth = model.truth(t)
    for ph, name in enumerate("abc"):
        u, node = body[f"u_min_{name}"]
        assert u == pytest.approx(float(e.u_pu[:, ph].min()), abs=1e-5)
        assert node in set(truth.node_ids.tolist())
        assert abs(u - truth.u_pu[:, ph].min()) < 0.02
    assert body["converged"] is True
    assert 0.0 < body["unbalance_max"][0] < 0.05
    assert body["losses_w"] > 0
    assert 0 < body["loading_max_pct"][0] < 100


def test_non_convergence_gives_a_flag_and_no_numbers(model: LvFeederModel) -> None:
    from gateway.grid.violations import FeederAlarms
    from gateway.native.loadflow import Feeder

    cfg = estimation_config(model, ALL)
    inj = sorted({c.node for c in cfg.connections})
    est = Estimator(cfg, Feeder.from_pgm_json(cfg.feeder, injection_nodes=inj, max_iter=1))
    t = MIDSUMMER + 12 * 3600
    e = est.estimate(t, readings(model.step(t), ALL))
    assert not e.converged
    assert np.isnan(e.u_pu).all()
    body = e.summary()
    assert body["converged"] is False and "u_min_a" not in body and body["reason"]
    alarms = FeederAlarms(cfg)
    events = alarms.check(e)
    assert [(x.alarm, x.state) for x in events] == [("estimate_failed", "raised")]
    assert alarms.check(e) == []  # raised once
