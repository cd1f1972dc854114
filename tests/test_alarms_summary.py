"""Alarms with hysteresis and windowed summaries, checked against hand-computed expectations."""

from __future__ import annotations

import numpy as np

from gateway.core.alarms import DeviceLostAlarm, LimitAlarms
from gateway.core.model import Frame, PointSpec, Quality
from gateway.grid.summarise import Summariser

G, B = Quality.GOOD, Quality.BAD
POINTS = (
    PointSpec("voltage_l1", "V", low=207.0, high=253.0, deadband=0.5),
    PointSpec("current_l1", "A", high=100.0),
)


def frame(ts: float, values: list[float], quality: list[int] | None = None) -> Frame:
    q = quality if quality is not None else [G] * len(values)
    return Frame("head", ts, np.array(values, dtype=np.float64), np.array(q, dtype=np.uint8))


def test_limit_alarm_raises_once_and_clears_after_hysteresis() -> None:
    alarms = LimitAlarms("head", POINTS)
    assert alarms.check(frame(0, [230.0, 10.0])) == []
    raised = alarms.check(frame(1, [253.5, 10.0]))
    assert [(e.alarm, e.state, e.point, e.value, e.limit) for e in raised] == [
        ("limit_high", "raised", "voltage_l1", 253.5, 253.0)
    ]
    # Wobbling around the limit: hysteresis is max(deadband 0.5, 1 % of 46 V) = 0.5 V.
    for v in (253.2, 252.9, 252.6, 254.0):
        assert alarms.check(frame(2, [v, 10.0])) == []
    cleared = alarms.check(frame(3, [252.4, 10.0]))
    assert [(e.alarm, e.state) for e in cleared] == [("limit_high", "cleared")]


def test_limit_low_and_unbounded_side() -> None:
    alarms = LimitAlarms("head", POINTS)
    events = alarms.check(frame(0, [200.0, -1e9]))  # current has no low limit
    assert [(e.alarm, e.point) for e in events] == [("limit_low", "voltage_l1")]
    # Hysteresis for voltage: 0.5 V above the low limit.
    assert alarms.check(frame(1, [207.3, 0.0])) == []
    assert [e.state for e in alarms.check(frame(2, [207.6, 0.0]))] == ["cleared"]


def test_bad_values_neither_raise_nor_clear() -> None:
    alarms = LimitAlarms("head", POINTS)
    alarms.check(frame(0, [260.0, 0.0]))
    assert alarms.check(frame(1, [np.nan, np.nan], [B, B])) == []
    assert alarms.check(frame(2, [230.0, 0.0], [B, G])) == []  # a BAD 230 V clears nothing
    assert [e.state for e in alarms.check(frame(3, [230.0, 0.0]))] == ["cleared"]


def test_device_lost_after_consecutive_failures_and_recovery_once() -> None:
    lost = DeviceLostAlarm("cab2", lost_after=3)
    bad = Frame.bad("cab2", 0.0, 2)
    assert lost.check(bad) == [] and lost.check(bad) == []
    assert lost.check(frame(1, [230.0, 1.0])) == []  # a good poll resets the count
    assert lost.check(bad) == [] and lost.check(bad) == []
    events = lost.check(bad, "timeout after 0.5 s")
    assert [(e.alarm, e.state, e.cause) for e in events] == [
        ("device_lost", "raised", "timeout after 0.5 s")
    ]
    assert lost.check(bad) == []
    assert [e.state for e in lost.check(frame(2, [230.0, 1.0]))] == ["cleared"]
    assert lost.check(frame(3, [230.0, 1.0])) == []


def test_summary_statistics_and_window_quality() -> None:
    s = Summariser("head", POINTS, integrity_every=3)
    values = [229.0, 231.0, 233.0]
    for i, v in enumerate(values):
        s.add(frame(100.0 + i, [v, 5.0], [G, G if i else B]))
    body = s.close_window(103.0)
    assert body["device"] == "head" and body["start"] == 100.0 and body["end"] == 103.0
    assert body["full"] is True
    v = body["points"]["voltage_l1"]
    assert (v["min"], v["mean"], v["max"], v["last"], v["n"], v["bad"], v["q"]) == (
        229.0, 231.0, 233.0, 233.0, 3, 0, "GOOD",
    )  # fmt: skip
    c = body["points"]["current_l1"]
    assert (c["n"], c["bad"], c["q"]) == (2, 1, "UNCERTAIN")
    assert (body["good"], body["bad"]) == (1, 0)


def test_report_by_exception_and_integrity_windows() -> None:
    s = Summariser("head", POINTS, integrity_every=3)
    sent = []
    for w, v in enumerate([230.0, 230.2, 230.9, 231.0, 231.0, 231.0]):
        s.add(frame(float(w), [v, 5.0]))
        sent.append(sorted(s.close_window(w + 1.0)["points"]))
    # Window 0 and 3 are integrity windows (everything); otherwise only moves past the deadband:
    # 230.2 is within 0.5 V of the last report (230.0), 230.9 is not; the current never moves.
    assert sent == [
        ["current_l1", "voltage_l1"],
        [],
        ["voltage_l1"],
        ["current_l1", "voltage_l1"],
        [],
        [],
    ]


def test_empty_window_is_bad_and_null_not_nan() -> None:
    s = Summariser("head", POINTS, integrity_every=1)
    s.add(Frame.bad("head", 1.0, 2))
    body = s.close_window(2.0)
    v = body["points"]["voltage_l1"]
    assert v["mean"] is None and v["n"] == 0 and v["bad"] == 1 and v["q"] == "BAD"
    assert body["bad"] == 2


def test_a_clock_step_before_the_first_frame_keeps_the_window_one_window_long() -> None:
    # The window loop stamps the end on the clock the window began on; a step (NTP) between the
    # previous end and the first poll put the start an hour away: a 3600 s or negative window.
    for step in (3600.0, -3600.0):
        s = Summariser("head", POINTS, integrity_every=1, window=60.0)
        s.add(frame(1000.0 + step + 0.2, [230.0, 5.0]))
        body = s.close_window(1060.0)
        assert (body["start"], body["end"]) == (1000.0, 1060.0), step
    # Without a step, and for the partial first window, the first frame's time stands.
    s = Summariser("head", POINTS, integrity_every=1, window=60.0)
    s.add(frame(1042.5, [230.0, 5.0]))
    assert s.close_window(1060.0)["start"] == 1042.5
