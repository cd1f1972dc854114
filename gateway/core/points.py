"""What a point is, without numpy: the config and every daemon that only validates or forwards
(the uplink) import this and stay small; arrays of values live in :mod:`gateway.core.model`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Quality(IntEnum):
    """Quality of one value, ordered so that ``max`` gives the worst."""

    GOOD = 0
    UNCERTAIN = 1  # decoded but outside its plausible range, or stale
    BAD = 2  # no value: the device did not answer or answered garbage


@dataclass(frozen=True)
class PointSpec:
    """What a daemon needs to know of one point after compilation (no protocol details)."""

    name: str
    unit: str = ""
    low: float | None = None  # alarm limits; None means unlimited
    high: float | None = None
    deadband: float = 0.0  # absolute, in the point's unit, for report-by-exception
