"""Node voltage magnitudes read without the complex voltages (gg_lf_expand_u) are the same doubles
as numpy's abs of the filled-in complex voltages, for a whole day, balanced and unbalanced, and
NaN exactly where a step did not converge."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.native.loadflow import Feeder, Loads
from gateway.native.loadflow_result import ReducedSolution
from tests.test_loadflow_support import IEEE_JSON, ieee_loads


@pytest.fixture(scope="module")
def feeder() -> Feeder:
    return Feeder.from_pgm_json(IEEE_JSON)


@pytest.mark.parametrize("symmetric", [False, True])
def test_whole_day_magnitudes_equal_abs_of_voltages(feeder: Feeder, symmetric: bool) -> None:
    day = ieee_loads(feeder, range(1440))
    res = feeder.solve_batch(day, symmetric=symmetric)
    u = res.u_pu
    assert "v" not in res.__dict__, "u_pu of a batch must not materialise the complex voltages"
    assert u.shape == (1440, feeder.model.n_nodes, 3)
    assert np.array_equal(u, np.abs(res.v))
    assert u.min() > 0.85 and u.max() < 1.15


def test_single_solve_magnitudes_equal_abs_of_voltages(feeder: Feeder) -> None:
    day = ieee_loads(feeder, [565])
    res = feeder.solve(Loads(day.p[0], day.q[0]), warm=False)
    assert np.array_equal(feeder._expand_u(res.reduced), np.abs(res.v))
    assert np.array_equal(res.u_pu, np.abs(res.v))


def test_u_pu_after_v_is_abs_of_v(feeder: Feeder) -> None:
    res = feeder.solve_batch(ieee_loads(feeder, range(10)))
    v = res.v
    assert np.array_equal(res.u_pu, np.abs(v))


def test_failed_steps_are_nan_and_the_rest_unchanged(feeder: Feeder) -> None:
    day = ieee_loads(feeder, range(6))
    p = np.array(day.p, copy=True)
    p[3] *= 1e4  # far beyond what the feeder can carry: no solution
    res = feeder.solve_batch(Loads(p, np.asarray(day.q)))
    assert list(res.converged) == [True, True, True, False, True, True]
    u = res.u_pu
    assert np.isnan(u[3]).all()
    assert np.array_equal(u, np.abs(res.v), equal_nan=True)
    assert np.isfinite(np.delete(u, 3, axis=0)).all()


def test_zero_infinite_and_nan_voltages_match_numpy(feeder: Feeder) -> None:
    # Not reachable through a solve; the kernel's fix-up pass for them must still agree.
    base = feeder.solve_batch(ieee_loads(feeder, range(4))).reduced
    v_head = np.array(base.v_head, copy=True)
    j_kept = np.array(base.j_kept, copy=True)
    v_head[0] = 0.0
    j_kept[0] = 0.0
    v_head[1, 0] = np.inf
    v_head[2, 3] = np.nan
    v_head[3, 2:4] = (0.0, -1e-300)
    red = ReducedSolution(v_head, j_kept, base.status, False, True)
    u = feeder._expand_u(red)
    assert np.array_equal(u, np.abs(feeder._expand(red, True)), equal_nan=True)
    assert (u[0] == 0.0).all() and np.isinf(u[1]).any() and np.isnan(u[2]).any()
