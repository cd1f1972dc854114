"""The plant's summary row: what an operator looks at once a window.

Its keys and their order are what upstream consumers parse (and the spooled bytes the tests pin),
so the row is built in one place.
"""

from __future__ import annotations

from typing import Any

from gateway.plant.anomaly import AnomalyDetector, Assessment
from gateway.plant.config import PlantConfig
from gateway.plant.maintenance import MaintenanceCounter
from gateway.plant.window_stats import PlantWindow, stats


def counters_body(counter: MaintenanceCounter) -> dict[str, Any]:
    """Hours, starts, trips, EOH and the next inspection due (also the status page's figures)."""
    c = counter.counters
    nxt = counter.next_inspection()
    return {
        "operating_hours": round(c.operating_hours, 4),
        "starts": c.starts,
        "trips": c.trips,
        "eoh": round(counter.eoh, 4),
        "next_inspection": None
        if nxt is None
        else {
            "name": nxt.name,
            "due_at_eoh": nxt.due_at_eoh,
            "remaining_eoh": round(nxt.remaining_eoh, 3),
            "remaining_hours": None
            if nxt.remaining_hours is None
            else round(nxt.remaining_hours, 1),
        },
    }


def summary_body(
    cfg: PlantConfig,
    w: PlantWindow,
    connection: str,
    detector: AnomalyDetector,
    last: Assessment | None,
    limits_active: list[str],
    counters: dict[str, Any],
) -> dict[str, Any]:
    """One window's summary; ``last`` is the latest assessment (it names the subsystem while the
    early warning lasts, also when the window itself scored nothing)."""
    return {
        "device": cfg.device,
        "profile": cfg.profile,
        "window_s": cfg.window,
        "t_start": w.start,
        "samples": w.samples,
        "connection": connection,
        "state": w.state(),
        "running_fraction": w.running_fraction(),
        "power_kw": stats(w.power),
        "efficiency": stats(w.efficiency),
        "score": stats(w.scores),
        "threshold": detector.model.card.threshold,
        "warning": detector.warning,
        "subsystem": last.subsystem if last is not None and last.warning else None,
        "limits_active": limits_active,
        "counters": counters,
    }
