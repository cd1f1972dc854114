"""The anomaly's alarm events as they go upstream, with their severity as a field.

Every transition, an anomaly early warning and a hard limit alike, is a row of kind ``alarm``;
its ``severity`` says what it is: the limit's own ``warning``/``alarm``/``trip`` (set by
:mod:`gateway.plant.rules`), and ``warning`` for the model (no limit crossed yet: look at the
named subsystem). A raised anomaly also carries ``subsystem`` (the one named, from the raising
streak), ``subsystems`` and ``contributions`` (each subsystem's and feature's share of the
reconstruction error in the raising window), so the operator upstream sees where to look without
asking the gateway.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.core.alarms import AlarmEvent, Severity
from gateway.plant.anomaly import Assessment


def anomaly_event(a: Assessment) -> AlarmEvent | None:
    """The assessment's raise or clear transition as a warning, attributed when raised."""
    e = a.event
    if e is None:
        return None
    if e.state != "raised":
        return replace(e, severity=Severity.WARNING)
    attribution = {
        "subsystem": e.point,
        "subsystems": {name: round(s, 4) for name, s in a.subsystems},
        "contributions": {k: round(v, 4) for k, v in a.contributions.items()},
    }
    return replace(e, severity=Severity.WARNING, detail=attribution)
