"""Limit and device-lost alarms with hysteresis: raised once, cleared once, never chattering.

A value that sits on its limit and wobbles by a few millivolts must not send an alarm per poll, so
a raised limit alarm clears only after the value is back inside by the hysteresis band. A device
counts as lost after ``lost_after`` consecutive failed polls, so one dropped RS-485 frame is not
an alarm but a dead meter is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.core.model import Frame, PointSpec, Quality

# Fraction of the low..high span used as hysteresis when a point has no deadband of its own.
_DEFAULT_HYSTERESIS = 0.01


class Severity(StrEnum):
    """How urgent an event is, where its source grades it (a plant limit's warning/alarm/trip, the
    anomaly model's early warning). A field, not a word inside ``cause``: the cause is free text
    for people, the severity is what upstream routes on."""

    WARNING = "warning"
    ALARM = "alarm"
    TRIP = "trip"


@dataclass(frozen=True)
class AlarmEvent:
    alarm: str  # "limit_high" | "limit_low" | "device_lost"
    state: str  # "raised" | "cleared"
    device: str
    ts: float
    point: str | None = None
    value: float | None = None
    limit: float | None = None
    cause: str | None = None
    severity: Severity | None = None
    # Figures only one domain has (the anomaly's subsystem and feature shares). They follow the
    # common keys in the row, which is where upstream consumers have always found them.
    detail: Mapping[str, Any] | None = field(default=None, hash=False)

    def body(self) -> dict[str, Any]:
        """The spooled row: the set fields in declaration order (None is left out), then detail."""
        body = {k: v for k, v in self.__dict__.items() if v is not None and k != "detail"}
        if self.severity is not None:
            body["severity"] = self.severity.value  # a plain string in the row, same position
        if self.detail:
            body.update(self.detail)
        return body


class LimitAlarms:
    """Per-device limit state over the frame's aligned point arrays.

    Only the points that have a limit are looked at: a meter has dozens of points and usually a
    handful of limits, and this runs on every poll.
    """

    def __init__(self, device: str, points: tuple[PointSpec, ...]) -> None:
        self.device = device
        limited = [i for i, p in enumerate(points) if p.low is not None or p.high is not None]
        self._idx = np.array(limited, dtype=np.intp)
        self._names = [points[i].name for i in limited]
        inf = float("inf")
        sel = [points[i] for i in limited]
        self._low = np.array([p.low if p.low is not None else -inf for p in sel], dtype=np.float64)
        self._high = np.array(
            [p.high if p.high is not None else inf for p in sel], dtype=np.float64
        )
        span = np.where(np.isfinite(self._high - self._low), self._high - self._low, 0.0)
        dead = np.array([p.deadband for p in sel], dtype=np.float64)
        self._hyst = np.maximum(dead, _DEFAULT_HYSTERESIS * span)
        self._high_on = np.zeros(len(sel), dtype=bool)
        self._low_on = np.zeros(len(sel), dtype=bool)

    def check(self, frame: Frame) -> list[AlarmEvent]:
        if not self._idx.size:
            return []
        # A BAD value says nothing about the limit: it neither raises nor clears.
        good = frame.quality[self._idx] == Quality.GOOD
        v = frame.values[self._idx]
        with np.errstate(invalid="ignore"):
            raise_high = good & ~self._high_on & (v > self._high)
            clear_high = good & self._high_on & (v <= self._high - self._hyst)
            raise_low = good & ~self._low_on & (v < self._low)
            clear_low = good & self._low_on & (v >= self._low + self._hyst)
        if not (raise_high.any() or clear_high.any() or raise_low.any() or clear_low.any()):
            return []
        events: list[AlarmEvent] = []
        for mask, alarm, state, limits in (
            (raise_high, "limit_high", "raised", self._high),
            (clear_high, "limit_high", "cleared", self._high),
            (raise_low, "limit_low", "raised", self._low),
            (clear_low, "limit_low", "cleared", self._low),
        ):
            for i in np.flatnonzero(mask):
                events.append(
                    AlarmEvent(
                        alarm,
                        state,
                        self.device,
                        frame.ts,
                        self._names[i],
                        float(v[i]),
                        float(limits[i]),
                    )
                )
        self._high_on = (self._high_on | raise_high) & ~clear_high
        self._low_on = (self._low_on | raise_low) & ~clear_low
        return events


class DeviceLostAlarm:
    def __init__(self, device: str, lost_after: int) -> None:
        self.device = device
        self._lost_after = lost_after
        self._failures = 0
        self.lost = False

    def check(self, frame: Frame, cause: str | None = None) -> list[AlarmEvent]:
        failed = bool(frame.quality.size) and bool(np.all(frame.quality == Quality.BAD))
        if failed:
            self._failures += 1
            if not self.lost and self._failures >= self._lost_after:
                self.lost = True
                return [
                    AlarmEvent(
                        "device_lost", "raised", self.device, frame.ts, cause=cause or "no answer"
                    )
                ]
            return []
        self._failures = 0
        if self.lost:
            self.lost = False
            return [AlarmEvent("device_lost", "cleared", self.device, frame.ts)]
        return []


class DeviceLostAlarms:
    """:class:`DeviceLostAlarm` for many devices at once, from one array of "answered" flags.

    Same rules per device (lost after ``lost_after`` consecutive failures, cleared on the first
    success after), same events in device order, but a few numpy operations per cycle instead of
    a frame and a check per device: a rack has a hundred boards polled ten times a second.
    """

    def __init__(self, devices: tuple[str, ...], lost_after: int) -> None:
        self.devices = devices
        self._lost_after = lost_after
        self._failures = np.zeros(len(devices), dtype=np.int64)
        self._lost = np.zeros(len(devices), dtype=bool)

    @property
    def lost(self) -> list[str]:
        """The devices counted lost now, in device order."""
        return [self.devices[i] for i in np.flatnonzero(self._lost).tolist()]

    def check(
        self, ok: npt.NDArray[np.bool_], ts: float, cause: str | None = None
    ) -> list[AlarmEvent]:
        """``ok[i]``: device ``i`` answered this cycle."""
        failed = ~ok
        self._failures = np.where(failed, self._failures + 1, 0)
        raised = failed & ~self._lost & (self._failures >= self._lost_after)
        cleared = ok & self._lost
        if not (raised.any() or cleared.any()):
            return []
        self._lost = (self._lost | raised) & ~cleared
        events: list[AlarmEvent] = []
        for i in np.flatnonzero(raised | cleared).tolist():
            device = self.devices[i]
            if raised[i]:
                events.append(
                    AlarmEvent("device_lost", "raised", device, ts, cause=cause or "no answer")
                )
            else:
                events.append(AlarmEvent("device_lost", "cleared", device, ts))
        return events
