"""The plant daemon's parts on their own: the counter file survives what a gateway goes through,
the gap rule keeps an outage out of the operating hours, efficiency and window statistics say
"unknown" rather than a wrong number, and the alarm rows carry a typed severity."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from gateway.core.alarms import AlarmEvent, Severity
from gateway.plant.alarm_events import anomaly_event
from gateway.plant.anomaly import Assessment
from gateway.plant.config import PROFILE_TAGS, CounterSettings
from gateway.plant.counter_store import CounterStore
from gateway.plant.efficiency import efficiency
from gateway.plant.gaps import GapRule
from gateway.plant.machine_state import RUNNING, TRIPPED, state_name
from gateway.plant.maintenance import Counters, MaintenanceCounter
from gateway.plant.rules import Limit, LimitRules
from gateway.plant.window_stats import PlantWindow, stats


def _settings(path: Path) -> CounterSettings:
    return CounterSettings(path, 60.0, 300.0, 1000.0, 12, 3)


def test_counters_round_trip_through_the_file_and_leave_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state" / "plant-counters.json"
    store = CounterStore(path, save_every_s=60.0)
    store.save(Counters(12.5, 3, 1, first_ts=10.0, last_ts=20.0, running=True))
    assert store.saves == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    again = CounterStore(path, 60.0).load_or_start("gt1", _settings(path))
    assert again == Counters(12.5, 3, 1, first_ts=10.0, last_ts=20.0, running=True)


def test_no_file_starts_from_the_configured_values(tmp_path: Path) -> None:
    path = tmp_path / "none.json"
    assert CounterStore(path, 60.0).load_or_start("gt1", _settings(path)) == Counters(1000.0, 12, 3)


@pytest.mark.parametrize("text", ["{half a file", "[1, 2]", "null"])
def test_an_unusable_file_is_kept_aside_and_counting_starts_over(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "plant-counters.json"
    path.write_text(text)
    store = CounterStore(path, 60.0)
    with caplog.at_level(logging.ERROR):
        counters = store.load_or_start("gt1", _settings(path))
    assert counters == Counters(1000.0, 12, 3)
    assert (tmp_path / "plant-counters.json.corrupt").read_text() == text
    assert not path.exists()
    assert "unusable" in caplog.text


def test_a_failed_save_is_logged_not_raised_and_retried_when_due(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = CounterStore(blocker / "plant-counters.json", save_every_s=0.0)
    with caplog.at_level(logging.ERROR):
        store.checkpoint(Counters(1.0))
    assert "cannot save counters" in caplog.text and store.saves == 0
    blocker.unlink()
    store.checkpoint_if_due(Counters(2.0))
    assert store.saves == 1
    assert json.loads((blocker / "plant-counters.json").read_text())["operating_hours"] == 2.0


def test_checkpoint_waits_for_its_interval(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "c.json", save_every_s=3600.0)
    store.checkpoint_if_due(Counters())
    assert store.saves == 0
    store.checkpoint(Counters())
    assert store.saves == 1


def test_a_gap_longer_than_allowed_is_not_operating_time() -> None:
    counter = MaintenanceCounter("gt1")
    gaps = GapRule("gt1", max_gap_s=300.0)
    for ts in (0.0, 60.0, 120.0, 1120.0, 1180.0):  # 1000 s without data after 120 s
        gaps.apply(ts, counter.counters)
        counter.update(ts, True, 0.8)
    assert counter.counters.operating_hours == pytest.approx((120.0 + 60.0) / 3600.0)


def test_after_a_restart_the_gap_is_measured_from_the_saved_last_sample() -> None:
    saved = Counters(5.0, 1, 0, first_ts=0.0, last_ts=1000.0, running=True)
    short = MaintenanceCounter("gt1", counters=Counters(**saved.to_dict()))
    GapRule("gt1", 300.0).apply(1200.0, short.counters)
    short.update(1200.0, True, 0.8)
    assert short.counters.operating_hours == pytest.approx(5.0 + 200.0 / 3600.0)
    long = MaintenanceCounter("gt1", counters=Counters(**saved.to_dict()))
    GapRule("gt1", 300.0).apply(2000.0, long.counters)
    long.update(2000.0, True, 0.8)
    assert long.counters.operating_hours == 5.0


def test_efficiency_only_while_running_and_with_the_methane_share() -> None:
    gt, chp = PROFILE_TAGS["gas_turbine"], PROFILE_TAGS["biogas_chp"]
    running = {"state": RUNNING, "power": 4000.0, "fuel_flow": 1000.0}
    assert efficiency(running, gt, 13.9) == pytest.approx(4000.0 / 13_900.0)
    assert math.isnan(efficiency({**running, "state": TRIPPED}, gt, 13.9))
    assert math.isnan(efficiency({**running, "fuel_flow": 0.0}, gt, 13.9))
    assert math.isnan(efficiency({"power": 4000.0, "fuel_flow": 1000.0}, gt, 13.9))
    biogas = {"state": RUNNING, "engine_power": 500.0, "gas_flow": 250.0, "methane_content": 55.0}
    assert efficiency(biogas, chp, 9.97) == pytest.approx(500.0 / (250.0 * 0.55 * 9.97))
    assert math.isnan(efficiency({**biogas, "methane_content": math.nan}, chp, 9.97))


def test_state_names_and_window_statistics_say_unknown_rather_than_guess() -> None:
    assert state_name(RUNNING) == "running" and state_name(TRIPPED) == "tripped"
    assert state_name(math.nan) == "unknown" and state_name(9.0) == "unknown"
    assert stats([math.nan]) is None
    assert stats([1.0, math.nan, 3.0]) == {"mean": 2.0, "min": 1.0, "max": 3.0, "last": 3.0}
    w = PlantWindow()
    assert (w.state(), w.running_fraction()) == ("unknown", 0)
    for s in (RUNNING, math.nan, RUNNING, TRIPPED):
        w.add(s, 1.0, math.nan, None)
    assert (w.state(), w.running_fraction(), w.samples) == ("tripped", 0.667, 4)


def test_limit_events_carry_their_limits_severity_as_a_field() -> None:
    rules = LimitRules(
        "gt1",
        [
            Limit("p", "low", 1.8, 0.1, "alarm", enable=("speed", 100.0)),
            Limit("p", "low", 1.3, 0.1, "trip", enable=("speed", 100.0)),
        ],
    )
    raised = rules.check(0.0, {"speed": 200.0, "p": 1.0})
    assert [e.severity for e in raised] == [Severity.ALARM, Severity.TRIP]
    assert [list(e.body())[-2:] for e in raised] == [["cause", "severity"]] * 2
    cleared = rules.check(1.0, {"speed": 0.0, "p": 1.0})  # gated off: cleared with a cause
    assert [(e.state, e.cause, e.body()["severity"]) for e in cleared] == [
        ("cleared", "alarm: speed below 100", "alarm"),
        ("cleared", "trip: speed below 100", "trip"),
    ]


def test_anomaly_rows_are_warnings_attributed_when_raised() -> None:
    raised = AlarmEvent("anomaly", "raised", "gt1", 5.0, "bearing", 3.0, 2.0, cause="bearing 70%")
    a = Assessment(5.0, 3.0, 2.0, {"vib": 0.712345}, (("bearing", 0.712345),), True, raised)
    body = anomaly_event(a).body()  # type: ignore[union-attr]
    assert list(body) == [
        *("alarm", "state", "device", "ts", "point", "value", "limit", "cause", "severity"),
        *("subsystem", "subsystems", "contributions"),
    ]
    assert body["severity"] == "warning" and body["subsystems"] == {"bearing": 0.7123}
    cleared = AlarmEvent("anomaly", "cleared", "gt1", 9.0, None, 0.5, 2.0)
    a = Assessment(9.0, 0.5, 2.0, {}, (("bearing", 1.0),), False, cleared)
    assert anomaly_event(a).body() == {  # type: ignore[union-attr]
        **cleared.body(),
        "severity": "warning",
    }
    assert anomaly_event(Assessment(9.0, 0.5, 2.0, {}, (), False, None)) is None
