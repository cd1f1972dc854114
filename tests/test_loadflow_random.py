"""Random radial feeders (sizes, line data with and without capacitance, Dyn/YNyn/no
transformer, magnetising branch, every load type, unbalance, PV back-feed) against
power-grid-model's Newton-Raphson, and the C kernel against its numpy reference."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from gateway.config.issues import IssueSink
from gateway.native.feeder_build import build
from gateway.native.feeder_model import BASE_POWER_1P
from gateway.native.loadflow import Feeder
from gateway.native.loadflow_ref import solve_ref
from tests.test_loadflow_support import pgm_solve, pgm_voltages, random_feeder

# LOADFLOW_SEEDS=500 for the long run; the default keeps the suite quick.
SEEDS = range(int(os.environ.get("LOADFLOW_SEEDS", "200")))


def _feeder(doc) -> Feeder:  # type: ignore[no-untyped-def]
    sink = IssueSink("random")
    model = build(doc["data"], "random", sink)
    sink.raise_if_any()
    assert model is not None
    return Feeder(model, tol=1e-12, max_iter=200)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_feeder_matches_power_grid_model(seed: int) -> None:
    doc = random_feeder(seed)
    feeder = _feeder(doc)
    for symmetric in (False, True):
        res = feeder.solve(symmetric=symmetric, warm=False)
        assert bool(res.converged)
        ref = pgm_voltages(pgm_solve(doc, symmetric), feeder, symmetric)
        assert np.abs(res.v - ref).max() < 1e-7, symmetric


@pytest.mark.parametrize("seed", range(0, 200, 5))
def test_c_kernel_equals_numpy_reference(seed: int) -> None:
    feeder = _feeder(random_feeder(seed))
    m = feeder.model
    s = (m.load_p + 1j * m.load_q) / BASE_POWER_1P * m.load_status[:, None]
    for symmetric in (False, True):
        res = feeder.solve(symmetric=symmetric, warm=False)
        ref = solve_ref(m, s, symmetric=symmetric, tol=1e-12, max_iter=200)
        assert ref.converged and bool(res.converged)
        assert np.abs(res.v - ref.v).max() < 1e-10
        assert np.abs(res.j[1:] - ref.j).max() < 1e-8
        assert abs(int(res.iterations) - ref.iterations) <= 1


def test_json_round_trip_of_a_random_feeder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = random_feeder(7)
    path = tmp_path / "f.json"
    path.write_text(json.dumps(doc))
    a = Feeder.from_pgm_json(path).solve()
    b = _feeder(doc).solve()
    assert np.abs(a.v - b.v).max() < 1e-9
