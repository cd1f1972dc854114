"""The plant daemon: a gas turbine or biogas CHP PLC over OPC UA, scored by the anomaly model and
hard limits, with maintenance counters that survive restarts.

Loops:

- ``acquire``: the OPC UA source keeps the latest value of every tag (subscription, or polling).
- ``score``: on a fixed clock (one sample per model ``sample_period_s`` of plant time) the latest
  tags go through the limit rules, the maintenance counter and the anomaly detector; raise/clear
  transitions go to the spool at once.
- ``summarise``: every ``window`` s one summary: operating state, power, efficiency, score, the
  counters and the time to the next inspection.

Every transition (an anomaly early warning and a hard limit alike) is a row of kind ``alarm``, the
kind every field daemon uses for events that must go upstream at once; gateway/plant/alarm_events
says what it carries (its severity, a typed field of the event).

Wiring only: the protocol is drivers/opcua, the model gateway/estimate, the policy gateway/plant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from drivers.opcua.client import OpcUaSource
from gateway.core.clock import Ticker, sleep_to_window_end
from gateway.core.errors import ConfigError, ConfigIssue
from gateway.core.model import Frame, Quality
from gateway.core.supervisor import LoopFactory
from gateway.plant.alarm_events import PlantLimits, anomaly_event
from gateway.plant.anomaly import (
    MODELS_DIR,
    AnomalyDetector,
    AnomalyModel,
    Assessment,
    ModelCard,
)
from gateway.plant.config import PlantConfig
from gateway.plant.feature_sets import feature_set
from gateway.plant.maintenance import Counters, MaintenanceCounter
from gateway.plant.tflite import ModelError, load_model
from gateway.spool.outbox import Outbox

if TYPE_CHECKING:
    from gateway.core.runtime import DaemonContext

log = logging.getLogger(__name__)

NAME = "plant"
_STATES = {0: "off", 1: "starting", 2: "running", 3: "stopping", 4: "tripped"}
_RUNNING, _TRIPPED = 2.0, 4.0
_STALL_SAMPLES = 10  # sample periods the scoring loop may lag before the watchdog calls it hung


class _PlantClock:
    """Plant time: the wall clock, or against the accelerated simulator ``speed`` times faster."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._t0 = time.time()
        self._m0 = time.monotonic()

    def now(self) -> float:
        if self.speed == 1.0:
            return time.time()
        return self._t0 + self.speed * (time.monotonic() - self._m0)


class _CounterStore:
    """The maintenance counters as a JSON file, replaced atomically (a power cut leaves the old
    or the new file, never half of one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saves = 0

    def load(self) -> Counters | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return Counters.from_dict(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            # Keep the evidence and count on from the configured start rather than not monitor.
            aside = self.path.with_suffix(self.path.suffix + ".corrupt")
            with contextlib.suppress(OSError):
                self.path.replace(aside)
            log.error("plant: counter file %s unusable (%s), moved to %s", self.path, exc, aside)
            return None

    def save(self, counters: Counters) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(counters.to_dict(), f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)  # atomic rename (os.replace)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.saves += 1


def _stats(values: list[float]) -> dict[str, float] | None:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return {
        "mean": round(float(np.mean(finite)), 4),
        "min": round(min(finite), 4),
        "max": round(max(finite), 4),
        "last": round(finite[-1], 4),
    }


class _Window:
    """What one summary window saw."""

    def __init__(self) -> None:
        self.start = time.time()
        self.power: list[float] = []
        self.efficiency: list[float] = []
        self.scores: list[float] = []
        self.states: list[float] = []
        self.samples = 0

    def add(self, state: float, power: float, efficiency: float, a: Assessment | None) -> None:
        self.samples += 1
        self.states.append(state)
        self.power.append(power)
        self.efficiency.append(efficiency)
        if a is not None:
            self.scores.append(a.score)


class PlantDaemon:
    name = NAME

    def __init__(self, ctx: DaemonContext, cfg: PlantConfig, model: AnomalyModel) -> None:
        self._ctx = ctx
        self._cfg = cfg
        self._source = OpcUaSource(cfg.opcua, cfg.device)
        self._index = {n.name: i for i, n in enumerate(cfg.opcua.nodes)}
        self._clock = _PlantClock(cfg.simulation_speed)
        self._detector = AnomalyDetector(cfg.device, model)
        self._rules = PlantLimits(cfg.device, cfg.limits, "plant.rules")
        self._rated_kw = cfg.rated_kw or model.features.rated_kw
        self._store = _CounterStore(cfg.counters.state_file)
        counters = self._store.load()
        if counters is None:
            c = cfg.counters
            counters = Counters(c.initial_hours, c.initial_starts, c.initial_trips)
        else:
            log.info(
                "%s: counters from %s: %.2f h, %d starts, %d trips",
                cfg.device,
                self._store.path,
                counters.operating_hours,
                counters.starts,
                counters.trips,
            )
        self._counter = MaintenanceCounter(cfg.device, cfg.maintenance, counters)
        self._outbox = Outbox(ctx.spool, NAME)
        self._latest: Frame | None = None
        self._frames = 0
        self._window = _Window()
        self._last: Assessment | None = None
        self._last_tags: dict[str, float] = {}
        self._last_count_ts: float | None = None
        self._saved_at = time.monotonic()
        self._samples = 0
        self._missed = 0
        self._summaries_sent = 0

    # ----------------------------------------------------------------- loops

    def loops(self) -> dict[str, tuple[LoopFactory, float]]:
        op = self._cfg.opcua
        # A reconnect attempt ends within the backoff cap plus connect and teardown timeouts.
        reconnect = op.reconnect_max + 4 * op.timeout + 10.0
        period = self._sample_period
        return {
            "acquire": (self._acquire_loop, max(reconnect, 10 * op.publishing_interval + 10.0)),
            "score": (self._score_loop, _STALL_SAMPLES * period + 10.0),
            "summarise": (self._summarise_loop, 2 * self._cfg.window + 10.0),
        }

    @property
    def _sample_period(self) -> float:
        """Wall seconds between two samples."""
        return self._detector.model.card.window.sample_period_s / self._clock.speed

    async def _acquire_loop(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._source.run(self._on_frame), name="plant-opcua")
            tg.create_task(self._watch_reconnects())

    async def _on_frame(self, frame: Frame) -> None:
        self._latest = frame
        self._frames += 1
        self._ctx.beats.beat(f"{NAME}.acquire")

    async def _watch_reconnects(self) -> None:
        # While the PLC is away no frame comes; a finished reconnect attempt (a new last_error)
        # is progress too: the source is retrying honestly, not hung.
        seen = self._source.last_error
        while True:
            await asyncio.sleep(1.0)
            err = self._source.last_error
            if err is not None and err is not seen:
                self._ctx.beats.beat(f"{NAME}.acquire")
            seen = err

    async def _score_loop(self) -> None:
        ticker = Ticker(self._sample_period)
        while True:
            await self._sample()
            self._ctx.beats.beat(f"{NAME}.score")
            # Late (a slow spool write): skip, never burst; the model sees a short gap.
            self._missed += await ticker.wait()

    async def _summarise_loop(self) -> None:
        while True:
            await self._flush(await sleep_to_window_end(self._cfg.window))
            self._ctx.beats.beat(f"{NAME}.summarise")

    # ----------------------------------------------------------------- one sample

    def _tags(self) -> dict[str, float]:
        frame = self._latest
        if frame is None:
            return {}
        good = frame.quality == Quality.GOOD
        values = np.where(good, frame.values, np.nan)
        return {name: float(values[i]) for name, i in self._index.items()}

    async def _sample(self) -> None:
        ts = self._clock.now()
        tags = self._tags()
        self._last_tags = tags
        self._samples += 1
        events = self._rules.check(ts, tags)
        self._count(ts, tags)
        a = self._detector.push(ts, tags)
        pt = self._cfg.tags
        power = tags.get(pt.power, math.nan)
        self._window.add(tags.get(pt.state, math.nan), power, self._efficiency(tags), a)
        if a is not None:
            self._last = a
            warning = anomaly_event(a)
            if warning is not None:
                events.append(warning)
        if events:
            # Stamped on the wall clock, like every row, also against an accelerated simulator.
            await self._outbox.put_alarms(events, time.time())
        if time.monotonic() - self._saved_at >= self._cfg.counters.save_every_s:
            self._save_counters()

    def _count(self, ts: float, tags: dict[str, float]) -> None:
        state = tags.get(self._cfg.tags.state, math.nan)
        if not math.isfinite(state):
            return  # no news of the machine: neither running time nor a stop
        c = self._counter.counters
        last = self._last_count_ts if self._last_count_ts is not None else c.last_ts
        if last is not None and ts - last > self._cfg.counters.max_gap_s:
            log.warning(
                "%s: %.0f s without data, not counted as operating time",
                self._cfg.device,
                ts - last,
            )
            c.last_ts = None
        power = tags.get(self._cfg.tags.power, math.nan)
        self._counter.update(ts, state == _RUNNING, power / self._rated_kw, state == _TRIPPED)
        self._last_count_ts = ts

    def _efficiency(self, tags: dict[str, float]) -> float:
        pt = self._cfg.tags
        power = tags.get(pt.power, math.nan)
        fuel = tags.get(pt.fuel, math.nan)
        if pt.methane is not None:
            fuel *= tags.get(pt.methane, math.nan) / 100.0
        fuel_kw = fuel * self._cfg.fuel_lhv
        if tags.get(pt.state) != _RUNNING or not fuel_kw > 0.0 or not math.isfinite(power):
            return math.nan
        return power / fuel_kw

    def _save_counters(self) -> None:
        self._saved_at = time.monotonic()
        try:
            self._store.save(self._counter.counters)
        except OSError as exc:
            log.error("%s: cannot save counters to %s: %s", NAME, self._store.path, exc)

    # ----------------------------------------------------------------- summaries, status

    def _counters_body(self) -> dict[str, Any]:
        c = self._counter.counters
        nxt = self._counter.next_inspection()
        return {
            "operating_hours": round(c.operating_hours, 4),
            "starts": c.starts,
            "trips": c.trips,
            "eoh": round(self._counter.eoh, 4),
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

    async def _flush(self, now: float) -> None:
        w, self._window = self._window, _Window()
        states = [s for s in w.states if math.isfinite(s)]
        a = self._last
        body: dict[str, Any] = {
            "device": self._cfg.device,
            "profile": self._cfg.profile,
            "window_s": self._cfg.window,
            "t_start": w.start,
            "samples": w.samples,
            "connection": self._source.mode,
            "state": _STATES.get(int(states[-1]), "unknown") if states else "unknown",
            "running_fraction": round(states.count(_RUNNING) / len(states), 3) if states else 0,
            "power_kw": _stats(w.power),
            "efficiency": _stats(w.efficiency),
            "score": _stats(w.scores),
            "threshold": self._detector.model.card.threshold,
            "warning": self._detector.warning,
            "subsystem": a.subsystem if a is not None and a.warning else None,
            "limits_active": self._rules.active(),
            "counters": self._counters_body(),
        }
        await self._outbox.put("summary", [body], now)
        self._summaries_sent += 1

    def status(self) -> dict[str, Any]:
        tags = self._last_tags
        pt = self._cfg.tags
        state = tags.get(pt.state, math.nan)
        state_name = _STATES.get(int(state), "unknown") if math.isfinite(state) else "unknown"
        power = tags.get(pt.power, math.nan)
        a = self._last
        score = f"{a.score:.3g} (threshold {a.threshold:.3g})" if a is not None else "not yet"
        cnt = self._counters_body()
        nxt = cnt["next_inspection"]
        err = self._source.last_error
        lines = [
            f"opcua {self._cfg.opcua.endpoint}: {self._source.mode}, {self._frames} frame(s)"
            + (f" ({err})" if err is not None else ""),
            f"{self._cfg.device}: {state_name}, {power:.0f} kW",
            f"model score {score}, early warning "
            + (f"ACTIVE: look at {a.subsystem}" if a is not None and a.warning else "none"),
            f"limits active: {', '.join(self._rules.active()) or 'none'}",
            f"counters: {cnt['operating_hours']:.2f} h, {cnt['starts']} starts, "
            f"{cnt['trips']} trips, EOH {cnt['eoh']:.1f}",
        ]
        if nxt is not None:
            lines.append(f"next inspection: {nxt['name']} in {nxt['remaining_eoh']:.0f} EOH")
        return {
            "summary": f"{self._cfg.device} {state_name}, {power:.0f} kW, score {score}",
            "connection": self._source.mode,
            "frames": self._frames,
            "samples": self._samples,
            "samples_missed": self._missed,
            "warning": self._detector.warning,
            "score": a.score if a is not None else None,
            "threshold": self._detector.model.card.threshold,
            "limits_active": self._rules.active(),
            "counters": cnt,
            "counter_saves": self._store.saves,
            "summaries_sent": self._summaries_sent,
            "alarms_sent": self._outbox.alarms_sent,
            "spool_pending": self._outbox.pending,
            "lines": lines,
        }

    async def close(self) -> None:
        try:
            await self._flush(time.time())
        finally:
            self._save_counters()


def load_anomaly_model(cfg: PlantConfig) -> AnomalyModel:
    """The configured (or packaged) model, with the config's settle time if it sets one."""
    sidecar = cfg.model if cfg.model is not None else MODELS_DIR / f"{cfg.profile}.json"
    card = ModelCard.read(sidecar)
    params = dict(card.raw.get("feature_params") or {})
    if cfg.settle_s is not None:
        params["settle_s"] = cfg.settle_s
    features = feature_set(card.profile, params)
    return AnomalyModel(card, load_model(sidecar.parent / card.model_file), features)


def build(ctx: DaemonContext) -> PlantDaemon:
    cfg = ctx.config.section("plant", PlantConfig)
    assert cfg is not None  # the runtime builds only enabled daemons
    # asyncua logs a traceback per lost connection; the source logs one line per change instead.
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    try:
        model = load_anomaly_model(cfg)
    except ModelError as exc:
        raise ConfigError([ConfigIssue(str(ctx.config.files[0]), "plant.model", str(exc))]) from exc
    return PlantDaemon(ctx, cfg, model)
