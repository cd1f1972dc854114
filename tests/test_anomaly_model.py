"""The shipped models: sidecars, contributions that name the subsystem, detection on the simulator.

The long evaluation (days of normal operation, ten episodes per fault) runs in
tools/train_anomaly.py and is stored in each sidecar's ``evaluation``; here a few short runs check
that the shipped model, through the runtime detector, still behaves as that table says.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gateway.plant.anomaly import MODELS_DIR, AnomalyDetector, AnomalyModel, ModelCard
from gateway.plant.feature_sets import feature_set
from gateway.sim.plant import Fault, PlantModel

PROFILES = ("gas_turbine", "biogas_chp")
FEATURE_SUBSYSTEM = {
    "bearing_vibration": "bearing",
    "lube_oil_pressure": "lube oil",
    "cdp": "compressor",
    "tc_outlier": "exhaust spread",
    "burner_pattern": "fuel/combustion",
    "methane_content": "gas quality",
}


@pytest.mark.parametrize("profile", PROFILES)
def test_sidecar_is_complete_and_matches_the_code(profile: str) -> None:
    card = ModelCard.read(MODELS_DIR / f"{profile}.json")
    fs = feature_set(profile)
    assert card.features == tuple(f.name for f in fs.features)
    assert card.subsystems == tuple(f.subsystem for f in fs.features)
    assert 0.0 < card.threshold < 10.0
    assert "false alarm" in card.raw["calibration"] and "seed=" in card.raw["training_data"]
    size = (MODELS_DIR / card.model_file).stat().st_size
    assert size < 16_384, f"{profile} model is {size} bytes"
    ev = card.raw["evaluation"]
    assert ev["normal"]["false_alarms_per_day"] < 1.0


@pytest.mark.parametrize("profile", PROFILES)
def test_a_disturbed_feature_is_named_by_its_subsystem(profile: str) -> None:
    model = AnomalyModel.load(profile)
    g = np.asarray(json.loads((MODELS_DIR / f"{profile}.golden.json").read_text())["inputs"])
    normal = g[0]
    base, _ = model.score(normal[None, :])
    assert base[0] < model.card.threshold
    n_f = len(model.card.features)
    for name, subsystem in FEATURE_SUBSYSTEM.items():
        if name not in model.card.features:
            continue
        x = normal.copy().reshape(model.card.window.blocks, n_f)
        x[:, model.card.features.index(name)] += 8.0  # 8 sigma in every block
        score, shares = model.score(x.reshape(1, -1))
        sub = model.subsystem_shares(shares)[0]
        assert score[0] > model.card.threshold, name
        assert model.subsystems[int(np.argmax(sub))] == subsystem, (name, sub)


def _run(plant: PlantModel, det: AnomalyDetector, seconds: int) -> list:
    events = []
    for _ in range(seconds):
        a = det.push(plant.start + plant.t, plant.step(1.0))
        if a is not None and a.event is not None:
            events.append((plant.t, a.event))
    return events


@pytest.mark.parametrize(
    ("profile", "fault", "subsystem"),
    [
        ("gas_turbine", Fault("bearing_wear", 0.0, 3.0), "bearing"),
        ("gas_turbine", Fault("combustion", 0.0, 60.0, channel=4), "fuel/combustion"),
        ("biogas_chp", Fault("low_methane", 0.0, 10.0), "gas quality"),
    ],
)
def test_fast_fault_is_detected_on_the_simulator_and_points_at_its_subsystem(
    profile: str, fault: Fault, subsystem: str
) -> None:
    # The trained unit (its burner pattern is a unit parameter) in the trained season (winter),
    # under manual control at constant load: not a stretch the training data contains.
    seed = {"gas_turbine": 11, "biogas_chp": 12}[profile]
    plant = PlantModel(profile, seed=seed, start=1_704_067_200.0 + 40 * 86_400.0, dispatch=False)
    plant.set_load(80.0)
    plant.command_start()
    det = AnomalyDetector("test", AnomalyModel.load(profile))
    settle = int(det.model.features.settle_s)
    assert _run(plant, det, settle + 1800) == []  # normal: no warning
    onset = plant.t
    plant.inject(Fault(fault.kind, onset, fault.rate, fault.channel))
    events = _run(plant, det, 3600)
    raised = [(t, e) for t, e in events if e.state == "raised"]
    assert raised, f"{fault.kind} not detected within an hour"
    t, ev = raised[0]
    assert ev.point == subsystem and ev.value > ev.limit
    assert t - onset < 3600
