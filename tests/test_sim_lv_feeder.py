"""The ground-truth simulator against power-grid-model (an independent solver) at the same loads,
its meters against the flows they claim to measure, and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.native.loadflow import Loads
from gateway.sim.lv_feeder import LvFeederModel
from tests.estimator_support import MIDSUMMER
from tests.test_loadflow_support import ieee_doc, pgm_solve, pgm_update, pgm_voltages

NOON = MIDSUMMER + 12 * 3600 + 7


@pytest.fixture(scope="module")
def model() -> LvFeederModel:
    return LvFeederModel(seed=3, start=MIDSUMMER)


def test_truth_matches_power_grid_model(model: LvFeederModel) -> None:
    truth = model.truth(NOON)
    assert truth.pv_w.max() > 1000.0  # PV is producing at noon
    loads = Loads(truth.load_p_w[None], truth.load_q_var[None])
    out = pgm_solve(ieee_doc(), False, pgm_update(model.feeder, loads))
    ref = pgm_voltages(out, model.feeder, False)[0]
    assert np.abs(truth.flow.v - ref).max() < 1e-7
    # The head meter: what enters the LV network = every load (net of PV) plus the line losses.
    head = model.step(NOON)["head"]
    line = out["line"][0]
    line_losses = float((line["p_from"] + line["p_to"]).sum())
    assert head["power_total"] == pytest.approx(truth.load_p_w.sum() + line_losses, abs=0.5)


def test_cabinet_meters_measure_their_lines(model: LvFeederModel) -> None:
    truth = model.truth(NOON)
    values = model.step(NOON)
    out = pgm_solve(
        ieee_doc(),
        False,
        pgm_update(model.feeder, Loads(truth.load_p_w[None], truth.load_q_var[None])),
    )
    line = out["line"][0]
    index = {int(i): k for k, i in enumerate(line["id"])}
    for name, loc in model.meter_locations().items():
        if name == "head":
            continue
        k = index[int(loc["line"])]
        # The IEEE lines run from the busbar side: p_from is the flow away from the busbar.
        for ph in range(3):
            assert values[name][f"power_l{ph + 1}"] == pytest.approx(
                line["p_from"][k][ph], abs=0.01
            )
            assert values[name][f"current_l{ph + 1}"] == pytest.approx(
                line["i_from"][k][ph], abs=1e-4
            )


def test_deterministic_per_seed_and_time(model: LvFeederModel) -> None:
    other = LvFeederModel(seed=3, start=0.0)
    # Equal to the solver's tolerance: each model warm-starts from its own previous solve.
    assert np.abs(other.truth(NOON).u_pu - model.truth(NOON).u_pu).max() < 1e-9
    assert not np.array_equal(LvFeederModel(seed=4, start=0.0).pv_kwp, model.pv_kwp)
    assert model.meter_names == ("head", "cab1", "cab2", "cab3")
