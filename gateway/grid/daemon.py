"""The grid daemon: meters polled over Modbus, summarised per window, alarms sent at once.

Wiring only: polling and decoding live in drivers/modbus, statistics in gateway/grid/summarise
and gateway/native, limit and device-lost alarms in gateway/core/alarms, the feeder estimate in
gateway/grid; rows go out through the spool's Outbox, summaries on the shared window loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from drivers.modbus.bus import SerialBus
from drivers.modbus.health import DeviceState
from drivers.modbus.source import ModbusRtuSource, ModbusSource, ModbusTcpSource, poll_forever
from gateway.core.alarms import DeviceLostAlarms, LimitAlarms
from gateway.core.errors import NativeError
from gateway.core.model import Frame, Quality
from gateway.core.supervisor import LoopFactory
from gateway.core.windows import SummaryWindows
from gateway.grid.config import GridConfig, MeterConfig
from gateway.grid.summarise import Summariser
from gateway.spool.outbox import Outbox

if TYPE_CHECKING:
    from gateway.core.runtime import DaemonContext
    from gateway.grid.estimator import Estimate, Estimator, MeterReading
    from gateway.grid.readings import ReadingMap
    from gateway.grid.violations import FeederAlarms

log = logging.getLogger(__name__)

NAME = "grid"
# Polls a device may miss (a slow answer, a backed-off dead slave) before the watchdog calls the
# loop stalled: poll_forever hands over a frame every tick, even a BAD one, so silence means hung.
_STALL_TICKS = 5
_LOST_AFTER = 3
# While a violation lasts its hints are repeated every this many estimate cycles (and at once
# when the set of violations changes), so an upstream controller that restarts catches up.
_HINT_REPEAT = 12


@dataclass
class _Meter:
    config: MeterConfig
    source: ModbusSource
    summariser: Summariser
    limits: LimitAlarms
    lost: DeviceLostAlarms
    last: Frame | None = None
    polls: int = 0


def _source(meter: MeterConfig, buses: dict[str, SerialBus]) -> ModbusSource:
    conn = meter.connection
    if conn.transport == "tcp":
        return ModbusTcpSource(conn)
    assert conn.bus is not None  # validated: an rtu meter names a configured bus
    return ModbusRtuSource(conn, buses[conn.bus])


class GridDaemon:
    name = NAME

    def __init__(self, ctx: DaemonContext, cfg: GridConfig) -> None:
        self._ctx = ctx
        self._cfg = cfg
        self._buses = {name: SerialBus(settings) for name, settings in cfg.buses.items()}
        self._meters = {
            m.name: _Meter(
                m,
                _source(m, self._buses),
                Summariser(m.name, m.plan.points, cfg.integrity_every, cfg.window),
                LimitAlarms(m.name, m.plan.points),
                DeviceLostAlarms((m.name,), _LOST_AFTER),
            )
            for m in cfg.meters.values()
        }
        self._outbox = Outbox(ctx.spool, NAME)
        self._windows = SummaryWindows(
            cfg.window, self._summarise, self._outbox, ctx.beats, f"{NAME}.summarise"
        )
        self._estimation: _Estimation | None = None
        if cfg.estimation is not None:
            self._estimation = _Estimation.build(cfg)

    def loops(self) -> dict[str, tuple[LoopFactory, float]]:
        loops: dict[str, tuple[LoopFactory, float]] = {}
        for m in self._meters.values():
            conn = m.config.connection
            timeout = conn.timeout if conn.timeout is not None else self._bus_timeout(conn.bus)
            budget = timeout * max(1, len(m.config.plan.requests))
            allowance = _STALL_TICKS * conn.poll_interval + budget + 5.0
            loops[f"poll.{m.config.name}"] = (self._poller(m), allowance)
        loops["summarise"] = self._windows.loop()
        if self._estimation is not None:
            # A solve runs in a worker thread, so polls never wait for it; the allowance covers a
            # few periods plus a slow first cycle (sensitivities for hints).
            period = self._estimation.est.cfg.period
            loops["estimate"] = (self._estimate_loop, 5 * period + 30.0)
        return loops

    async def _estimate_loop(self) -> None:
        e = self._estimation
        assert e is not None
        period = e.est.cfg.period
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            now = time.time()
            readings = e.readings({n: m.last for n, m in self._meters.items()}, now)
            if e.est.cfg.head_meter not in readings:
                body = {"device": "feeder", "t": now, "valid": False, "converged": False}
                body["reason"] = f"no fresh reading from head meter {e.est.cfg.head_meter}"
                await self._outbox.put("estimate", [body], now)
                e.note(body)
            else:
                est, hints = await asyncio.to_thread(e.cycle, now, readings)
                events = e.alarms.check(est)
                body = {"valid": est.converged, **est.summary()}
                head = self._meters[e.est.cfg.head_meter].last
                body["measured_ts"] = head.ts if head is not None else None
                if e.est.cfg.publish_nodes and est.converged:
                    body["nodes"] = est.node_ids.tolist()
                    body["u_pu"] = np.round(est.u_pu.T, 5).tolist()
                await self._outbox.put("estimate", [body], now)
                e.note(body)
                if events:
                    await self._outbox.put_alarms(events, now)
                if hints:
                    await self._outbox.put("hint", hints, now)
            self._ctx.beats.beat(f"{NAME}.estimate")
            next_at += period
            if next_at < loop.time():
                next_at = loop.time() + period  # a slow cycle: skip, never burst
            await asyncio.sleep(next_at - loop.time())

    def _bus_timeout(self, bus: str | None) -> float:
        return self._cfg.buses[bus].timeout if bus is not None else 1.0

    def _poller(self, m: _Meter) -> LoopFactory:
        async def run() -> None:
            await poll_forever(
                m.source,
                m.config.plan,
                m.config.connection.poll_interval,
                lambda f: self._on_frame(m, f),
            )

        return run

    async def _on_frame(self, m: _Meter, frame: Frame) -> None:
        m.last = frame
        m.polls += 1
        m.summariser.add(frame)
        events = m.limits.check(frame) + m.lost.check(
            np.array([_answered(m, frame)]), frame.ts, m.source.health.last_cause
        )
        self._ctx.beats.beat(f"{NAME}.poll.{m.config.name}")
        if events:
            await self._outbox.put_alarms(events, frame.ts)

    def _summarise(self, now: float) -> list[dict[str, Any]]:
        # Every meter's summary in one window's batch: they become durable together.
        return [m.summariser.close_window(now) for m in self._meters.values()]

    def status(self) -> dict[str, Any]:
        meters: dict[str, Any] = {}
        good = total = 0
        lines = []
        for name, m in self._meters.items():
            frame = m.last
            n_good = (
                int(np.count_nonzero(frame.quality == Quality.GOOD)) if frame is not None else 0
            )
            n = len(m.config.plan.points)
            good += n_good
            total += n
            h = m.source.health
            meters[name] = {
                "state": h.state.value,
                "last_poll": frame.ts if frame is not None else None,
                "last_success": h.last_success_ts,
                "points_good": n_good,
                "points_bad": n - n_good,
                "polls": m.polls,
                "cause": h.last_cause,
                "values": _values(m) if frame is not None else {},
            }
            age = f"{time.time() - frame.ts:.1f} s ago" if frame is not None else "never"
            cause = f" ({h.last_cause})" if h.last_cause else ""
            lines.append(
                f"meter {name}: {h.state.value}, last poll {age}, {n_good}/{n} good{cause}"
            )
        return {
            "summary": f"{len(meters)} meters, {good}/{total} points good",
            "meters": meters,
            **self._outbox.counts(),
            "lines": lines,
            **({"estimate": self._estimation.last} if self._estimation is not None else {}),
        }

    async def close(self) -> None:
        # The partial window is data too: flush it so a restart loses nothing that was polled.
        try:
            await self._windows.close(time.time())
        finally:
            for m in self._meters.values():
                m.source.close()
            for bus in self._buses.values():
                bus.close()


def _answered(m: _Meter, frame: Frame) -> bool:
    """A meter that answered is not lost, even when every value it sent was NaN or implausible
    (those are BAD values with their reasons): only a failed read with nothing GOOD counts."""
    nothing_good = bool(frame.quality.size) and bool(np.all(frame.quality == Quality.BAD))
    return not (nothing_good and m.source.health.state is DeviceState.FAILED)


def _values(m: _Meter) -> dict[str, list[Any]]:
    """The last frame as ``name: [value | None, quality, unit]`` for ``gridgate points``."""
    frame = m.last
    assert frame is not None
    return {
        p.name: [
            float(v) if math.isfinite(v) else None,
            Quality(int(q)).name,
            p.unit,
        ]
        for p, v, q in zip(m.config.plan.points, frame.values, frame.quality, strict=True)
    }


@dataclass
class _Estimation:
    """The estimator, its reading maps and alarm state: the daemon's side of the estimate loop."""

    est: Estimator
    maps: dict[str, ReadingMap]
    alarms: FeederAlarms
    last: dict[str, Any]
    cycles: int = 0
    hinted: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def build(cls, cfg: GridConfig) -> _Estimation:
        # A grid daemon without [grid.estimation] never loads the load flow (C kernels, feeder
        # model): the estimator, its reading maps and its alarms are imported only here.
        # start-up: the estimator (the load flow) only when [grid.estimation] is configured
        from gateway.grid.estimator import Estimator

        # start-up: as above (the reading maps are the estimator's input side)
        from gateway.grid.readings import ReadingMap

        # start-up: as above (the feeder alarms read the estimator's results)
        from gateway.grid.violations import FeederAlarms

        ecfg = cfg.estimation
        assert ecfg is not None
        maps = {n: ReadingMap(cfg.meters[n]) for n in ecfg.meters}
        return cls(Estimator(ecfg), maps, FeederAlarms(ecfg), {})

    def readings(self, frames: dict[str, Frame | None], now: float) -> dict[str, MeterReading]:
        out = {}
        for name, rmap in self.maps.items():
            r = rmap.reading(frames.get(name), now, self.est.cfg.max_age)
            if r is not None:
                out[name] = r
        return out

    def cycle(self, now: float, readings: dict[str, MeterReading]) -> tuple[Estimate, list[Any]]:
        """Runs in a worker thread: the estimate and, for new or lasting violations, hints."""
        # start-up: the sensitivity solves behind hints load only once a feeder runs estimation
        from gateway.grid.hints import plan

        est = self.est.estimate(now, readings)
        self.cycles += 1
        if not self.est.cfg.hints:
            return est, []
        violations = self.alarms.violations(est)
        key = tuple((v.kind, v.element, v.phase) for v in violations)
        if not violations or (key == self.hinted and self.cycles % _HINT_REPEAT):
            self.hinted = key
            return est, []
        self.hinted = key
        try:
            return est, plan(self.est, est, violations)
        except NativeError as exc:
            log.warning("feeder: no hints this cycle, a sensitivity solve failed: %s", exc)
            return est, []

    def note(self, body: dict[str, Any]) -> None:
        if body.get("valid") != self.last.get("valid"):
            log.info("feeder estimate %s", "valid" if body.get("valid") else body.get("reason"))
        self.last = body


def build(ctx: DaemonContext) -> GridDaemon:
    cfg = ctx.config.section("grid", GridConfig)
    assert cfg is not None  # the runtime builds only enabled daemons
    return GridDaemon(ctx, cfg)
