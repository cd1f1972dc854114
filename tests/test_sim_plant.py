"""The plant process model: deterministic, physically consistent, and faults that do what they say.

Fault effects are checked against a twin run with the same seed and no fault: the noise streams
are identical, so the difference is exactly the fault's contribution, which is compared with the
severity computed independently here (rate x hours since onset).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.sim.plant import (
    BIOGAS_CHP,
    FAULT_KINDS,
    GAS_TURBINE,
    Fault,
    PlantModel,
    PlantState,
)

HOUR = 3600.0


def _twins(profile: str, fault: Fault, hours: float, dt: float = 2.0) -> tuple[dict, dict]:
    base = PlantModel(profile, seed=7, dispatch=False, trip_rate_per_day=0.0)
    faulty = PlantModel(profile, seed=7, dispatch=False, trip_rate_per_day=0.0, faults=[fault])
    for m in (base, faulty):
        m.command_start()
        m.set_load(80.0)
    a: dict[str, float] = {}
    b: dict[str, float] = {}
    for _ in range(int(hours * HOUR / dt)):
        a = base.step(dt)
        b = faulty.step(dt)
    return a, b


def test_same_seed_same_values_other_seed_differs() -> None:
    one = PlantModel(GAS_TURBINE, seed=1).run(500, 1.0)[1]
    two = PlantModel(GAS_TURBINE, seed=1).run(500, 1.0)[1]
    other = PlantModel(GAS_TURBINE, seed=2).run(500, 1.0)[1]
    np.testing.assert_array_equal(one, two)
    assert not np.allclose(one, other)


@pytest.mark.parametrize("profile", [GAS_TURBINE, BIOGAS_CHP])
def test_every_tag_is_finite_and_run_matches_step(profile: str) -> None:
    model = PlantModel(profile, seed=3)
    times, values = model.run(300, 2.0)
    assert values.shape == (300, len(model.tag_names))
    assert np.isfinite(values).all()
    assert times[-1] == pytest.approx(600.0)
    assert set(model.last) == set(model.tag_names)


def test_unknown_profile_and_misplaced_fault_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown plant profile"):
        PlantModel("steam_engine")
    with pytest.raises(ValueError, match="does not apply"):
        PlantModel(BIOGAS_CHP, faults=[Fault("compressor_fouling", 0.0, 0.1)])
    with pytest.raises(ValueError, match="channel"):
        PlantModel(GAS_TURBINE, faults=[Fault("combustion", 0.0, 1.0, channel=7)])


def test_nothing_changes_before_onset() -> None:
    a, b = _twins(GAS_TURBINE, Fault("bearing_wear", onset=2 * HOUR, rate=5.0), hours=1.0)
    assert a == b


def test_thermocouple_drift_moves_one_channel_by_rate_times_hours() -> None:
    a, b = _twins(GAS_TURBINE, Fault("thermocouple_drift", HOUR, 12.0, channel=2), hours=3.0)
    assert b["exhaust_temp_2"] - a["exhaust_temp_2"] == pytest.approx(24.0, abs=1e-6)
    for i in (1, 3, 4, 5, 6):
        assert b[f"exhaust_temp_{i}"] == a[f"exhaust_temp_{i}"]


def test_combustion_problem_opens_the_spread_around_one_burner_keeping_the_mean() -> None:
    a, b = _twins(GAS_TURBINE, Fault("combustion", HOUR, 20.0, channel=4), hours=3.0)
    delta = [b[f"exhaust_temp_{i}"] - a[f"exhaust_temp_{i}"] for i in range(1, 7)]
    assert delta[3] == pytest.approx(-40.0, abs=1e-6)  # burner 4 is cold
    assert delta[2] == pytest.approx(-14.0, abs=1e-6)  # its neighbours a bit
    assert delta[4] == pytest.approx(-14.0, abs=1e-6)
    assert sum(delta) == pytest.approx(0.0, abs=1e-6)  # same fuel, same mean exhaust


def test_bearing_wear_raises_vibration_and_warms_the_oil() -> None:
    a, b = _twins(GAS_TURBINE, Fault("bearing_wear", HOUR, 1.5), hours=3.0)
    assert b["bearing_vibration"] - a["bearing_vibration"] == pytest.approx(3.0, abs=1e-6)
    assert b["lube_oil_temp"] > a["lube_oil_temp"] + 1.0


def test_compressor_fouling_needs_more_fuel_for_the_same_power() -> None:
    a, b = _twins(GAS_TURBINE, Fault("compressor_fouling", HOUR, 0.02), hours=3.0)
    assert b["power"] == a["power"]
    assert b["fuel_flow"] / a["fuel_flow"] == pytest.approx(1.04, rel=1e-9)
    assert b["cdp"] < a["cdp"] - 0.1
    assert b["exhaust_temp_1"] > a["exhaust_temp_1"]


@pytest.mark.parametrize("profile", [GAS_TURBINE, BIOGAS_CHP])
def test_lube_oil_leak_lowers_pressure_by_its_severity(profile: str) -> None:
    a, b = _twins(profile, Fault("lube_oil_leak", HOUR, 0.4), hours=3.0)
    assert a["lube_oil_pressure"] - b["lube_oil_pressure"] == pytest.approx(0.8, abs=0.01)


def test_low_methane_needs_more_gas_and_finally_derates_the_engine() -> None:
    a, b = _twins(BIOGAS_CHP, Fault("low_methane", HOUR, 3.0), hours=2.0)
    assert a["methane_content"] - b["methane_content"] == pytest.approx(3.0, abs=1e-6)
    assert b["engine_power"] == pytest.approx(a["engine_power"], rel=1e-9)
    # Same power from leaner gas: volume flow scales with 1/methane.
    ratio = a["methane_content"] / b["methane_content"]
    assert b["gas_flow"] / a["gas_flow"] == pytest.approx(ratio, rel=1e-9)
    a, b = _twins(BIOGAS_CHP, Fault("low_methane", HOUR, 5.0), hours=3.5)
    assert b["methane_content"] < 48.0
    assert b["engine_power"] < a["engine_power"] - 30.0


def test_heavy_oil_leak_trips_the_turbine_and_counts_it() -> None:
    model = PlantModel(
        GAS_TURBINE, seed=1, dispatch=False, trip_rate_per_day=0.0,
        faults=[Fault("lube_oil_leak", 600.0, 4.0)],
    )  # fmt: skip
    model.command_start()
    model.set_load(90.0)
    for _ in range(3600):
        values = model.step(1.0)
    assert model.state in (PlantState.TRIPPED, PlantState.OFF)
    assert values["trips"] == 1.0 and values["starts"] == 1.0
    trip = [e for e in model.events if e.kind == "trip"]
    assert len(trip) == 1 and trip[0].cause == "low lube oil pressure"
    # Oil pressure is 2.55 bar at load: with 4 bar/h it crosses the 1.0 bar trip after ~23 min.
    assert 600 + 20 * 60 < trip[0].t < 600 + 27 * 60


def test_gas_turbine_physics_is_plausible_over_two_days() -> None:
    model = PlantModel(GAS_TURBINE, seed=5, start=1_717_200_000.0)  # June
    names = model.tag_names
    _, v = model.run(2 * 86_400 // 10, 10.0)
    col = {n: v[:, i] for i, n in enumerate(names)}
    running = (col["state"] == PlantState.RUNNING) & (col["power"] > 2000.0)
    assert running.mean() > 0.3
    efficiency = col["power"][running] / (col["fuel_flow"][running] * 13.9)
    assert efficiency.min() > 0.22 and efficiency.max() < 0.33
    # Exhaust follows load (correlated, not independent noise), and the six thermocouples agree.
    exhaust = np.mean([col[f"exhaust_temp_{i}"] for i in range(1, 7)], axis=0)
    assert np.corrcoef(col["power"][running], exhaust[running])[0, 1] > 0.9
    spread = np.ptp([col[f"exhaust_temp_{i}"][running] for i in range(1, 7)], axis=0)
    assert spread.max() < 20.0
    # Inlet temperature swings with the day, warmer in the afternoon than before dawn.
    hours = ((model.start + 10.0 * np.arange(1, len(v) + 1)) % 86_400) / 3600
    afternoon = col["inlet_temp"][(hours > 14) & (hours < 16)].mean()
    dawn = col["inlet_temp"][(hours > 3) & (hours < 5)].mean()
    assert afternoon - dawn > 5.0
    # Every start event is counted, and a stopped turbine stands still.
    assert col["starts"][-1] == sum(1 for e in model.events if e.kind == "start")
    stopped = col["state"] == PlantState.OFF
    assert stopped.any() and col["shaft_speed"][stopped].max() < 200.0


def test_chp_heat_balance_and_gas_led_cycling() -> None:
    model = PlantModel(BIOGAS_CHP, seed=4)
    names = model.tag_names
    _, v = model.run(2 * 86_400 // 5, 5.0)
    col = {n: v[:, i] for i, n in enumerate(names)}
    steady = (col["state"] == PlantState.RUNNING) & (np.abs(np.gradient(col["heat_power"])) < 0.05)
    lift = col["coolant_supply_temp"][steady] - col["coolant_return_temp"][steady]
    # Supply minus return equals heat over the circuit's 28 kW/K (to within the return's wander).
    np.testing.assert_allclose(lift, col["heat_power"][steady] / 28.0, atol=1.5)
    stops = [e for e in model.events if e.kind == "stop"]
    starts = [e for e in model.events if e.kind == "start"]
    assert len(starts) >= 2 and len(stops) >= 2
    level_at = {
        round(t): col["gas_holder_level"][i] for i, t in enumerate(5.0 * np.arange(1, 1 + len(v)))
    }
    assert all(level_at[round(e.t)] < 25.0 for e in stops)
    assert all(level_at[round(e.t)] > 60.0 for e in starts)
    elec = col["engine_power"][steady] / (
        col["gas_flow"][steady] * col["methane_content"][steady] / 100 * 9.97
    )
    assert elec.min() > 0.3 and elec.max() < 0.42


def test_fault_kinds_cover_the_issue() -> None:
    assert set(FAULT_KINDS[GAS_TURBINE]) >= {
        "thermocouple_drift", "combustion", "bearing_wear", "compressor_fouling", "lube_oil_leak",
    }  # fmt: skip
    assert "low_methane" in FAULT_KINDS[BIOGAS_CHP]
    assert Fault("bearing_wear", 10.0, 2.0).severity(10.0 + 1800.0) == pytest.approx(1.0)
    assert Fault("bearing_wear", 10.0, 2.0, limit=0.5).severity(1e9) == 0.5
    assert math.isclose(Fault("thermocouple_drift", 0.0, -6.0).severity(HOUR), -6.0)
