"""Maintenance counters from real operation: hours, starts, trips, equivalent operating hours.

Equivalent operating hours use the common OEM form (Siemens/Alstom EOH, GE factored hours/starts,
see GE GER-3620 "Heavy-Duty Gas Turbine Operating and Maintenance Considerations")::

    EOH = OH + a * S + b * T

OH is the fired (running) hours, S the starts and T the trips. ``a`` is the equivalent hours one
start consumes (thermal cycle fatigue; OEM values are typically 10..25 h per start), and ``b`` the
extra hours a trip from load consumes on top of its start (GER-3620 counts a trip from full load as
8 starts, hence the default ``b = 7 * a``). The factors are per machine and come from the OEM's
manual; the defaults here are placeholders a technician is expected to set.

A start is a stopped -> running transition; a trip is a running -> stopped transition while the
unit was still carrying at least ``trip_load_fraction`` of its rating (a normal stop unloads first)
or while the PLC's trip flag was set.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.core.errors import ConfigError, ConfigIssue

log = logging.getLogger(__name__)

_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Inspection:
    """A recurring inspection every ``interval_eoh`` equivalent operating hours."""

    name: str
    interval_eoh: float


@dataclass(frozen=True)
class MaintenancePolicy:
    """The EOH factors and inspection intervals of one machine."""

    eoh_per_start: float = 20.0
    eoh_per_trip: float = 140.0
    trip_load_fraction: float = 0.3
    inspections: tuple[Inspection, ...] = (
        Inspection("combustion inspection", 8000.0),
        Inspection("hot gas path inspection", 24000.0),
        Inspection("major inspection", 48000.0),
    )

    def __post_init__(self) -> None:
        issues = []
        for key in ("eoh_per_start", "eoh_per_trip"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0.0):
                issues.append(ConfigIssue("<maintenance>", key, "must be a finite number >= 0"))
        if not 0.0 <= self.trip_load_fraction <= 1.0:
            issues.append(ConfigIssue("<maintenance>", "trip_load_fraction", "must be in 0..1"))
        for n, insp in enumerate(self.inspections):
            if not (math.isfinite(insp.interval_eoh) and insp.interval_eoh > 0.0):
                issues.append(
                    ConfigIssue("<maintenance>", f"inspections[{n}].interval_eoh", "must be > 0")
                )
        if issues:
            raise ConfigError(issues)


GAS_TURBINE_POLICY = MaintenancePolicy()
# Reciprocating gas engines are serviced mostly by running hours; starts weigh little.
BIOGAS_CHP_POLICY = MaintenancePolicy(
    eoh_per_start=1.0,
    eoh_per_trip=5.0,
    trip_load_fraction=0.3,
    inspections=(
        Inspection("oil and spark plug service", 2000.0),
        Inspection("cylinder head overhaul", 30000.0),
        Inspection("major overhaul", 60000.0),
    ),
)


@dataclass
class Counters:
    """The persistent part: what must survive a restart (see :meth:`to_dict`)."""

    operating_hours: float = 0.0
    starts: int = 0
    trips: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    running: bool = False
    last_load_fraction: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Counters:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class NextInspection:
    name: str
    due_at_eoh: float
    remaining_eoh: float
    # calendar hours at the average accrual rate so far; None before any EOH accrued
    remaining_hours: float | None


@dataclass
class MaintenanceCounter:
    """Counts hours, starts and trips of one machine from its running state and load."""

    device: str
    policy: MaintenancePolicy = field(default_factory=MaintenancePolicy)
    counters: Counters = field(default_factory=Counters)

    def update(
        self, ts: float, running: bool, load_fraction: float, tripped: bool = False
    ) -> list[str]:
        """Advance to ``ts``; returns the events counted now ("start", "stop", "trip")."""
        c = self.counters
        events: list[str] = []
        if c.first_ts is None:
            c.first_ts = ts
        if c.last_ts is not None and ts > c.last_ts and c.running and running:
            c.operating_hours += (ts - c.last_ts) / _SECONDS_PER_HOUR
        if running and not c.running and c.last_ts is not None:
            c.starts += 1
            events.append("start")
        elif c.running and not running:
            if tripped or c.last_load_fraction >= self.policy.trip_load_fraction:
                c.trips += 1
                events.append("trip")
            else:
                events.append("stop")
        for e in events:
            log.info(
                "%s: %s (load %.0f%%), EOH %.1f",
                self.device,
                e,
                100.0 * c.last_load_fraction,
                self.eoh,
            )
        c.running = running
        c.last_load_fraction = load_fraction if math.isfinite(load_fraction) else 0.0
        c.last_ts = ts
        return events

    @property
    def eoh(self) -> float:
        c = self.counters
        return (
            c.operating_hours
            + self.policy.eoh_per_start * c.starts
            + self.policy.eoh_per_trip * c.trips
        )

    def eoh_rate(self) -> float | None:
        """Average EOH accrued per calendar hour since counting began, None before an hour."""
        c = self.counters
        if c.first_ts is None or c.last_ts is None:
            return None
        elapsed_h = (c.last_ts - c.first_ts) / _SECONDS_PER_HOUR
        if elapsed_h <= 0.0 or self.eoh <= 0.0:
            return None
        return self.eoh / elapsed_h

    def next_inspection(self, eoh_rate: float | None = None) -> NextInspection | None:
        """The inspection due soonest, with calendar hours at ``eoh_rate`` (default: average).

        Where intervals coincide (24,000 EOH is also a combustion inspection) the larger
        inspection is named, since it includes the smaller one.
        """
        eoh = self.eoh
        rate = eoh_rate if eoh_rate is not None else self.eoh_rate()
        due_list = []
        for insp in self.policy.inspections:
            due = (math.floor(eoh / insp.interval_eoh) + 1) * insp.interval_eoh
            due_list.append((due, -insp.interval_eoh, insp.name))
        if not due_list:
            return None
        due, _, name = min(due_list)
        remaining = due - eoh
        hours = remaining / rate if rate is not None and rate > 0.0 else None
        return NextInspection(name, due, remaining, hours)
