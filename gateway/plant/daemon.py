"""The plant daemon: a gas turbine or biogas CHP PLC over OPC UA, scored by the anomaly model and
hard limits, with maintenance counters that survive restarts.

Loops:

- ``acquire``: the OPC UA source keeps the latest value of every tag (subscription, or polling).
- ``score``: on a fixed clock (one sample per model ``sample_period_s`` of plant time) the latest
  tags go through the limit rules, the maintenance counter and the anomaly detector; raise/clear
  transitions go to the spool at once (gateway/plant/alarm_events says what they carry).
- ``summarise``: every ``window`` s one summary: operating state, power, efficiency, score, the
  counters and the time to the next inspection (gateway/plant/payloads).

Wiring only: the protocol is drivers/opcua, the model and the policy gateway/plant.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from drivers.opcua.client import OpcUaSource
from gateway.core.clock import ScaledClock, Ticker
from gateway.core.errors import ConfigError, ConfigIssue
from gateway.core.model import Frame, Quality
from gateway.core.supervisor import LoopFactory
from gateway.core.windows import SummaryWindows
from gateway.plant.alarm_events import anomaly_event
from gateway.plant.anomaly import AnomalyDetector, AnomalyModel, Assessment
from gateway.plant.config import PlantConfig
from gateway.plant.counter_store import CounterStore
from gateway.plant.efficiency import efficiency
from gateway.plant.gaps import GapRule
from gateway.plant.machine_state import RUNNING, TRIPPED, state_name
from gateway.plant.maintenance import MaintenanceCounter
from gateway.plant.model_loader import load_anomaly_model
from gateway.plant.payloads import counters_body, summary_body
from gateway.plant.rules import LimitRules
from gateway.plant.tflite import ModelError
from gateway.plant.window_stats import PlantWindow
from gateway.spool.outbox import Outbox

if TYPE_CHECKING:
    from gateway.core.runtime import DaemonContext

NAME = "plant"
_STALL_SAMPLES = 10  # sample periods the scoring loop may lag before the watchdog calls it hung


class PlantDaemon:
    name = NAME

    def __init__(self, ctx: DaemonContext, cfg: PlantConfig, model: AnomalyModel) -> None:
        self._ctx = ctx
        self._cfg = cfg
        self._source = OpcUaSource(cfg.opcua, cfg.device)
        self._index = {n.name: i for i, n in enumerate(cfg.opcua.nodes)}
        self._clock = ScaledClock(cfg.simulation_speed)
        self._detector = AnomalyDetector(cfg.device, model)
        self._rules = LimitRules(cfg.device, cfg.limits, "plant.rules")
        self._rated_kw = cfg.rated_kw or model.features.rated_kw
        self._store = CounterStore(cfg.counters.state_file, cfg.counters.save_every_s)
        counters = self._store.load_or_start(cfg.device, cfg.counters)
        self._counter = MaintenanceCounter(cfg.device, cfg.maintenance, counters)
        self._gaps = GapRule(cfg.device, cfg.counters.max_gap_s)
        self._outbox = Outbox(ctx.spool, NAME)
        self._windows = SummaryWindows(
            cfg.window, self._summarise, self._outbox, ctx.beats, f"{NAME}.summarise"
        )
        self._latest: Frame | None = None
        self._frames = 0
        self._window = PlantWindow()
        self._last: Assessment | None = None
        self._last_tags: dict[str, float] = {}
        self._samples = 0
        self._missed = 0

    # ----------------------------------------------------------------- loops

    def loops(self) -> dict[str, tuple[LoopFactory, float]]:
        op = self._cfg.opcua
        # A reconnect attempt ends within the backoff cap plus connect and teardown timeouts.
        reconnect = op.reconnect_max + 4 * op.timeout + 10.0
        period = self._sample_period
        return {
            "acquire": (self._acquire_loop, max(reconnect, 10 * op.publishing_interval + 10.0)),
            "score": (self._score_loop, _STALL_SAMPLES * period + 10.0),
            "summarise": self._windows.loop(),
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
        eff = efficiency(tags, pt, self._cfg.fuel_lhv)
        self._window.add(tags.get(pt.state, math.nan), power, eff, a)
        if a is not None:
            self._last = a
            warning = anomaly_event(a)
            if warning is not None:
                events.append(warning)
        if events:
            # Stamped on the wall clock, like every row, also against an accelerated simulator.
            await self._outbox.put_alarms(events, time.time())
        self._store.checkpoint_if_due(self._counter.counters)

    def _count(self, ts: float, tags: dict[str, float]) -> None:
        state = tags.get(self._cfg.tags.state, math.nan)
        if not math.isfinite(state):
            return  # no news of the machine: neither running time nor a stop
        self._gaps.apply(ts, self._counter.counters)
        power = tags.get(self._cfg.tags.power, math.nan)
        self._counter.update(ts, state == RUNNING, power / self._rated_kw, state == TRIPPED)

    # ----------------------------------------------------------------- summaries, status

    def _summarise(self, now: float) -> list[dict[str, Any]]:
        w, self._window = self._window, PlantWindow()
        # The counters this summary reports are on disk before it is committed: after a kill the
        # daemon resumes from at least what upstream has seen, so they never go back there
        # (between summaries a kill loses at most ``save_every_s`` of counting).
        self._store.checkpoint(self._counter.counters)
        body = summary_body(
            self._cfg,
            w,
            self._source.mode,
            self._detector,
            self._last,
            self._rules.active(),
            counters_body(self._counter),
        )
        return [body]

    def status(self) -> dict[str, Any]:
        tags = self._last_tags
        pt = self._cfg.tags
        state = state_name(tags.get(pt.state, math.nan))
        power = tags.get(pt.power, math.nan)
        a = self._last
        score = f"{a.score:.3g} (threshold {a.threshold:.3g})" if a is not None else "not yet"
        cnt = counters_body(self._counter)
        nxt = cnt["next_inspection"]
        err = self._source.last_error
        lines = [
            f"opcua {self._cfg.opcua.endpoint}: {self._source.mode}, {self._frames} frame(s)"
            + (f" ({err})" if err is not None else ""),
            f"{self._cfg.device}: {state}, {power:.0f} kW",
            f"model score {score}, early warning "
            + (f"ACTIVE: look at {a.subsystem}" if a is not None and a.warning else "none"),
            f"limits active: {', '.join(self._rules.active()) or 'none'}",
            f"counters: {cnt['operating_hours']:.2f} h, {cnt['starts']} starts, "
            f"{cnt['trips']} trips, EOH {cnt['eoh']:.1f}",
        ]
        if nxt is not None:
            lines.append(f"next inspection: {nxt['name']} in {nxt['remaining_eoh']:.0f} EOH")
        return {
            "summary": f"{self._cfg.device} {state}, {power:.0f} kW, score {score}",
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
            **self._outbox.counts(),
            "lines": lines,
        }

    async def close(self) -> None:
        try:
            await self._windows.close(time.time())
        finally:
            self._store.checkpoint(self._counter.counters)


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
