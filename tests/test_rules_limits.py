"""Hard limits: on-delay, hysteresis, missing values, config errors."""

from __future__ import annotations

import math

import pytest

from gateway.core.errors import ConfigError
from gateway.plant.rules import Limit, LimitRules


def _run(rules: LimitRules, series: list[tuple[float, float]], tag: str = "x") -> list[tuple]:
    out = []
    for ts, v in series:
        out += [(e.alarm, e.state, e.ts) for e in rules.check(ts, {tag: v})]
    return out


def test_high_limit_wobbling_on_the_line_raises_once_and_clears_once() -> None:
    rules = LimitRules("gt1", [Limit("x", "high", 10.0, hysteresis=1.0)])
    # wobbles +-0.3 around the limit for 20 samples, then falls below limit - hysteresis
    series = [(float(t), 10.0 + (0.3 if t % 2 else -0.3)) for t in range(20)]
    series += [(20.0, 9.5), (21.0, 8.9), (22.0, 8.0)]
    assert _run(rules, series) == [("limit_high", "raised", 1.0), ("limit_high", "cleared", 21.0)]


def test_low_limit_with_on_delay_ignores_a_short_dip() -> None:
    rules = LimitRules("gt1", [Limit("p", "low", 1.5, 0.2, severity="trip", delay_s=3.0)])
    dip = [(0.0, 2.0), (1.0, 1.4), (2.0, 1.4), (3.0, 2.0)]  # 2 s below: no alarm
    assert _run(rules, dip, "p") == []
    hold = [(10.0, 1.4), (11.0, 1.3), (12.0, 1.2), (13.0, 1.2), (14.0, 1.6), (15.0, 1.75)]
    assert _run(rules, hold, "p") == [("limit_low", "raised", 13.0), ("limit_low", "cleared", 15.0)]
    assert rules.active() == []


def test_missing_or_nan_value_neither_raises_nor_clears() -> None:
    rules = LimitRules("gt1", [Limit("x", "high", 10.0, 1.0)])
    assert _run(rules, [(0.0, 11.0)]) == [("limit_high", "raised", 0.0)]
    assert rules.check(1.0, {}) == []
    assert rules.check(2.0, {"x": math.nan}) == []
    assert rules.active() == ["x.high.alarm"]


def test_event_names_device_tag_limit_and_severity() -> None:
    rules = LimitRules("chp2", [Limit("vib", "high", 7.1, 0.5, severity="trip")])
    (ev,) = rules.check(5.0, {"vib": 8.0})
    assert ev.body() == {
        "alarm": "limit_high",
        "state": "raised",
        "device": "chp2",
        "ts": 5.0,
        "point": "vib",
        "value": 8.0,
        "limit": 7.1,
        "cause": "trip",
        "severity": "trip",
    }


def test_every_bad_limit_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        LimitRules(
            "gt1",
            [
                Limit("a", "above", 1.0, 0.1),
                Limit("b", "high", math.inf, -1.0, severity="fatal"),
                Limit("c", "low", 1.0, 0.1),
                Limit("c", "low", 2.0, 0.1),
            ],
            source="plant.toml",
        )
    text = str(err.value)
    for part in ("[0]: kind", "[1]: value", "[1]: hysteresis", "[1]: severity", "c.low.alarm"):
        assert part in text


def test_default_gas_turbine_limits_catch_an_oil_leak_before_the_plc_trips() -> None:
    from gateway.plant.rules import BIOGAS_CHP_LIMITS, GAS_TURBINE_LIMITS
    from gateway.sim.plant import Fault, PlantModel, PlantState

    LimitRules("chp", BIOGAS_CHP_LIMITS)  # valid as shipped
    plant = PlantModel("gas_turbine", seed=3, start=1_704_067_200.0, dispatch=False)
    plant.set_load(80.0)
    plant.command_start()
    rules = LimitRules("gt", GAS_TURBINE_LIMITS)
    for _ in range(1200):  # run up and settle a little: no limit on a healthy start
        assert rules.check(plant.t, plant.step(1.0)) == []
    plant.inject(Fault("lube_oil_leak", plant.t, 3.0))  # 3 bar/h: trips within the hour
    raised = []
    for _ in range(3600):
        tags = plant.step(1.0)
        raised += [(e.cause, plant.t) for e in rules.check(plant.t, tags) if e.state == "raised"]
        if plant.state is PlantState.TRIPPED:
            break
    assert plant.state is PlantState.TRIPPED  # the PLC tripped at 1.0 bar
    assert [c for c, _ in raised] == ["alarm", "trip"]  # ours said so before, in that order


def test_enabled_limit_is_quiet_below_its_gate_and_clears_when_the_gate_lapses() -> None:
    lim = Limit("p", "low", 1.5, 0.1, enable=("speed", 1400.0))
    rules = LimitRules("chp", [lim])
    assert rules.check(0.0, {"p": 0.2, "speed": 300.0}) == []  # starting: no oil pressure yet
    (raised,) = rules.check(1.0, {"p": 1.2, "speed": 1500.0})
    assert (raised.state, raised.value) == ("raised", 1.2)
    (cleared,) = rules.check(2.0, {"p": 0.1, "speed": 200.0})  # stopped: nothing left to alarm
    assert cleared.body() == {
        "alarm": "limit_low",
        "state": "cleared",
        "device": "chp",
        "ts": 2.0,
        "point": "p",
        "limit": 1.5,
        "cause": "alarm: speed below 1400",
        "severity": "alarm",
    }
    assert rules.active() == []
