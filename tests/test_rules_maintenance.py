"""Maintenance counters against hand-counted operating histories."""

from __future__ import annotations

import pytest

from gateway.core.errors import ConfigError
from gateway.plant.maintenance import (
    Counters,
    Inspection,
    MaintenanceCounter,
    MaintenancePolicy,
)

H = 3600.0


def _history(counter: MaintenanceCounter, steps: list[tuple[float, bool, float]]) -> list[str]:
    events = []
    for ts, running, load in steps:
        events += counter.update(ts, running, load)
    return events


def test_hours_starts_trips_and_eoh_by_the_formula() -> None:
    policy = MaintenancePolicy(eoh_per_start=20.0, eoh_per_trip=140.0, trip_load_fraction=0.3)
    c = MaintenanceCounter("gt1", policy)
    steps = [(0.0, False, 0.0)]
    # run 1: start at 1 h, run 5 h, unload to 5 % and stop normally
    steps += [(1 * H, True, 0.2)] + [((1 + k) * H, True, 0.9) for k in range(1, 6)]
    steps += [(6.5 * H, True, 0.05), (7 * H, False, 0.0)]
    # run 2: start at 10 h, run 2 h at 80 %, trip
    steps += [(10 * H, True, 0.5), (11 * H, True, 0.8), (12 * H, True, 0.8), (12.01 * H, False, 0)]
    assert _history(c, steps) == ["start", "stop", "start", "trip"]
    hours = (6.5 - 1.0) + (12.0 - 10.0)  # running at both ends of each interval only
    assert c.counters.operating_hours == pytest.approx(hours)
    assert (c.counters.starts, c.counters.trips) == (2, 1)
    assert c.eoh == pytest.approx(hours + 20.0 * 2 + 140.0 * 1)


def test_plc_trip_flag_counts_a_trip_even_at_low_load() -> None:
    c = MaintenanceCounter("chp1")
    c.update(0.0, False, 0.0)
    c.update(10.0, True, 0.1)
    assert c.update(20.0, False, 0.0, tripped=True) == ["trip"]


def test_first_sample_running_is_not_a_start() -> None:
    # The daemon may come up while the machine already runs: that start was counted before.
    c = MaintenanceCounter("gt1")
    assert c.update(0.0, True, 0.9) == []
    assert c.update(H, True, 0.9) == []
    assert c.counters.starts == 0 and c.counters.operating_hours == pytest.approx(1.0)


def test_counters_survive_a_restart_via_dict() -> None:
    a = MaintenanceCounter("gt1")
    for ts, run in [(0.0, False), (1.0, True), (H + 1.0, True)]:
        a.update(ts, run, 0.9)
    b = MaintenanceCounter("gt1", counters=Counters.from_dict(a.counters.to_dict()))
    b.update(2 * H + 1.0, True, 0.9)
    assert b.counters.operating_hours == pytest.approx(2.0) and b.counters.starts == 1


def test_next_inspection_and_calendar_time() -> None:
    policy = MaintenancePolicy(
        eoh_per_start=0.0,
        eoh_per_trip=0.0,
        inspections=(Inspection("ci", 8000.0), Inspection("hgp", 24000.0)),
    )
    c = MaintenanceCounter("gt1", policy)
    c.counters = Counters(operating_hours=7000.0, first_ts=0.0, last_ts=14000.0 * H, running=True)
    nxt = c.next_inspection()
    assert nxt is not None
    assert (nxt.name, nxt.due_at_eoh, nxt.remaining_eoh) == ("ci", 8000.0, 1000.0)
    # 7000 EOH in 14000 calendar hours: 0.5 EOH/h, so 1000 EOH is 2000 h away
    assert nxt.remaining_hours == pytest.approx(2000.0)
    assert c.next_inspection(eoh_rate=1.0).remaining_hours == pytest.approx(1000.0)  # type: ignore[union-attr]
    c.counters.operating_hours = 23000.0  # 24000 is both: the larger inspection is named
    assert c.next_inspection().name == "hgp"  # type: ignore[union-attr]


def test_bad_policy_is_refused_with_every_issue() -> None:
    with pytest.raises(ConfigError) as err:
        MaintenancePolicy(
            eoh_per_start=-1.0, trip_load_fraction=2.0, inspections=(Inspection("x", 0.0),)
        )
    text = str(err.value)
    assert "eoh_per_start" in text and "trip_load_fraction" in text and "interval_eoh" in text
