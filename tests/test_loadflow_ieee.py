"""The IEEE European LV test feeder: gridgate's sweep against power-grid-model (Newton-Raphson,
asymmetric and symmetric) and OpenDSS, at single minutes and over the whole day in one batch."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.native.loadflow import Feeder
from tests.test_loadflow_support import (
    IEEE_JSON,
    ieee_doc,
    ieee_loads,
    ieee_profiles,
    opendss_circuit,
    opendss_voltages,
    pgm_solve,
    pgm_update,
    pgm_voltages,
)

MINUTES = [0, 300, 565, 720, 1100, 1439]
TOL = 1e-7  # p.u., the bar for "the same answer"


@pytest.fixture(scope="module")
def feeder() -> Feeder:
    return Feeder.from_pgm_json(IEEE_JSON, tol=1e-12)


@pytest.mark.parametrize("symmetric", [False, True])
def test_minutes_match_power_grid_model(feeder: Feeder, symmetric: bool) -> None:
    loads = ieee_loads(feeder, MINUTES)
    out = pgm_solve(ieee_doc(), symmetric, pgm_update(feeder, loads))
    ref = pgm_voltages(out, feeder, symmetric)
    for t in range(len(MINUTES)):
        res = feeder.solve(type(loads)(loads.p[t], loads.q[t]), symmetric=symmetric)
        assert bool(res.converged)
        assert np.abs(res.v - ref[t]).max() < TOL, MINUTES[t]
    if not symmetric:
        # The shared README's reference point: its minute 566 counts from 1 (row 565 here).
        res = feeder.solve(type(loads)(loads.p[2], loads.q[2]))
        assert res.u_pu.min() == pytest.approx(0.9924675, abs=1e-7)
        assert res.u_pu.max() == pytest.approx(1.0605906, abs=1e-7)


def test_line_flows_match_power_grid_model(feeder: Feeder) -> None:
    loads = ieee_loads(feeder, [565])
    out = pgm_solve(ieee_doc(), False, pgm_update(feeder, loads))
    res = feeder.solve(type(loads)(loads.p[0], loads.q[0]))
    index = {int(i): k for k, i in enumerate(out["line"]["id"][0])}
    sel = [index[int(i)] for i in feeder.model.line_ids]
    line = out["line"][0][sel]
    assert np.abs(res.i_from - line["i_from"]).max() < 1e-4  # A
    assert np.abs(res.s_from.real - line["p_from"]).max() < 1e-2  # W
    assert np.abs(res.s_to.imag - line["q_to"]).max() < 1e-2
    assert np.allclose(res.loading, line["loading"], rtol=0, atol=1e-9)
    trafo = out["transformer"][0]
    assert float(res.trafo_loading()) == pytest.approx(float(trafo["loading"][0]), abs=1e-9)
    hv = out["node"][0][out["node"]["id"][0] == 0]["u_pu"][0]
    assert np.abs(np.abs(res.head.v_source_node) - hv).max() < TOL
    # Losses: power-grid-model's line and transformer in-flows at both ends, summed.
    expected = sum(
        float((out[c][0]["p_from"] + out[c][0]["p_to"]).sum()) for c in ("line", "transformer")
    )
    assert float(res.losses_w) == pytest.approx(expected, abs=1e-3)


def test_minutes_match_opendss(feeder: Feeder) -> None:
    dss = opendss_circuit()
    ids, kw = ieee_profiles()
    order = {lid: i for i, lid in enumerate(ids)}
    names = [int("".join(c for c in n if c.isdigit())) + 20000 for n in dss.Loads.AllNames()]
    loads = ieee_loads(feeder, MINUTES)
    for t, minute in enumerate(MINUTES):
        u_dss = opendss_voltages(dss, feeder, kw[minute, [order[n] for n in names]])
        res = feeder.solve(type(loads)(loads.p[t], loads.q[t]))
        assert np.abs(res.u_pu - u_dss).max() < TOL, minute


def test_whole_day_batch_matches_power_grid_model_and_single_solves(feeder: Feeder) -> None:
    loads = ieee_loads(feeder, range(1440))
    batch = feeder.solve_batch(loads)
    assert batch.converged.all()
    assert batch.v.shape == (1440, feeder.model.n_nodes, 3)
    out = pgm_solve(ieee_doc(), False, pgm_update(feeder, loads))
    assert np.abs(batch.v - pgm_voltages(out, feeder, False)).max() < TOL
    # Warm-started batch steps equal cold single solves of the same minute.
    for t in (0, 777):
        one = feeder.solve(type(loads)(loads.p[t], loads.q[t]), warm=False)
        assert np.abs(one.v - batch.v[t]).max() < 1e-10


def test_whole_day_symmetric_batch_matches_power_grid_model(feeder: Feeder) -> None:
    loads = ieee_loads(feeder, range(0, 1440, 4))
    batch = feeder.solve_batch(loads, symmetric=True)
    out = pgm_solve(ieee_doc(), True, pgm_update(feeder, loads))
    assert np.abs(batch.v - pgm_voltages(out, feeder, True)).max() < TOL


def test_whole_day_batch_matches_opendss(feeder: Feeder) -> None:
    dss = opendss_circuit()
    ids, kw = ieee_profiles()
    order = {lid: i for i, lid in enumerate(ids)}
    names = [int("".join(c for c in n if c.isdigit())) + 20000 for n in dss.Loads.AllNames()]
    cols = [order[n] for n in names]
    batch = feeder.solve_batch(ieee_loads(feeder, range(1440)))
    worst = 0.0
    for minute in range(1440):
        u_dss = opendss_voltages(dss, feeder, kw[minute, cols])
        worst = max(worst, float(np.abs(batch.u_pu[minute] - u_dss).max()))
    assert worst < TOL
