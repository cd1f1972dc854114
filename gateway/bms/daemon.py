"""The BMS daemon: the rack read every cycle, the cells kernel run on it, alarms sent at once,
summaries per window, balancing masks written to the boards only in ``active`` mode.

Wiring only: the protocol is drivers/cellbus, the maths gateway/native/cells, the policy
gateway/bms.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from drivers.cellbus.rack import CellRack, RackSample
from gateway.bms.balancer import BalanceWriter
from gateway.bms.board_alarms import BoardAlarms
from gateway.bms.config import BmsConfig
from gateway.bms.layout import StringLayout
from gateway.bms.monitor import StringMonitor
from gateway.bms.recorder import Recorder
from gateway.bms.sample_grid import SampleGrid
from gateway.bms.summary import RackWindow, string_body
from gateway.core.clock import Ticker
from gateway.core.errors import GatewayError
from gateway.core.supervisor import LoopFactory
from gateway.core.windows import SummaryWindows
from gateway.spool.outbox import Outbox

if TYPE_CHECKING:
    from gateway.core.runtime import DaemonContext

NAME = "bms"
_STALL_CYCLES = 10  # cycles a read may take before the watchdog calls the loop stalled


class BmsDaemon:
    name = NAME

    def __init__(self, ctx: DaemonContext, cfg: BmsConfig) -> None:
        self._ctx = ctx
        self._cfg = cfg
        self._layout = StringLayout(cfg.rack)
        self._rack = CellRack(cfg.rack)
        self._monitor = StringMonitor(cfg, self._layout)
        self._boards = BoardAlarms(self._layout.boards, cfg.board_lost_after)
        self._window = RackWindow(self._layout.boards, cfg.balancing.mode)
        self._writer = BalanceWriter(cfg.balancing, self._rack.n_boards)
        self._recorder = (
            Recorder(cfg.recording, self._layout.n_cells, self._layout.n_temps)
            if cfg.recording is not None
            else None
        )
        self._outbox = Outbox(ctx.spool, NAME)
        self._windows = SummaryWindows(
            cfg.window, self._summarise, self._outbox, ctx.beats, f"{NAME}.summarise"
        )
        self._last: RackSample | None = None
        self._grid = SampleGrid(cfg.cycle)
        self._overruns = 0

    def loops(self) -> dict[str, tuple[LoopFactory, float]]:
        bus = self._cfg.rack.bus
        per_line = max(len(line.boards) for line in self._cfg.rack.lines)
        worst_read = per_line * bus.response_timeout * (1 + bus.retries)
        return {
            "cycle": (self._cycle_loop, _STALL_CYCLES * self._cfg.cycle + worst_read + 5.0),
            "summarise": self._windows.loop(),
        }

    async def _cycle_loop(self) -> None:
        ticker = Ticker(self._cfg.cycle)
        self._grid.new_grid()  # after a restart, the time since the last sample is measured
        while True:
            await self._cycle()
            # Real progress only: a cycle read the rack and ran the kernel.
            self._ctx.beats.beat(f"{NAME}.cycle")
            # Late cycles are skipped, not burst (the kernel's dt counts the skipped ticks, so
            # no charge is lost in the count).
            missed = await ticker.wait()
            self._grid.ticked(missed)
            self._overruns += missed
            for _ in range(missed):
                self._window.missed_cycle()

    async def _cycle(self) -> None:
        t0 = time.monotonic()
        s = await self._rack.read()
        dt = self._grid.interval(t0)
        events = self._monitor.step(s.ts, dt, s.current_a, s.cell_v, s.cell_q, s.temp_c, s.temp_q)
        events += self._boards.check(s)
        self._last = s
        self._window.add(s, self._monitor.summary())
        if self._recorder is not None:
            self._recorder.write(
                s.ts, s.current_a, s.string_v, s.cell_v, s.cell_q, s.temp_c, s.temp_q
            )
        if events:
            await self._outbox.put_alarms(events, s.ts)
        masks = self._monitor.estimator.board_mask.astype(np.uint16)
        now = time.monotonic()
        if self._writer.due(masks, now):
            acked = await self._rack.write_balancing(masks, self._cfg.balancing.board_timeout_s)
            self._writer.written(masks, acked, now)

    def _summarise(self, now: float) -> list[dict[str, Any]]:
        body = self._window.close(now, self._boards.silent)
        if body is None:
            return []  # no cycle completed in the window: nothing to say
        body["window_s"] = self._cfg.window
        return [body]

    async def _flush(self, now: float) -> None:
        await self._windows.close(now)

    def status(self) -> dict[str, Any]:
        s = self._last
        if s is None:
            return {"summary": "no cycle yet", "lines": ["rack: no cycle yet"]}
        st = string_body(self._monitor.summary())
        ok = int(np.count_nonzero(s.board_ok))
        soc = st["soc"]
        lines = [
            f"rack: {ok}/{len(s.board_ok)} boards answering, cycle {s.duration_s * 1e3:.0f} ms, "
            f"last {time.time() - s.ts:.1f} s ago, {self._overruns} cycle(s) missed",
            f"SOC min {soc['min']} ({soc['min_cell']}) mean {soc['mean']} "
            f"max {soc['max']} ({soc['max_cell']})",
            f"voltage spread {st['voltage']['spread']} V, temperature max "
            f"{st['temperature']['max']} C, {st['faulted']} cell(s) faulted",
            f"balancing {self._cfg.balancing.mode}: {st['bleeding']} cell(s) planned, "
            f"{self._writer.writes} write(s)",
        ]
        silent = self._boards.silent
        if silent:
            lines.append(f"silent boards: {', '.join(silent)}")
        return {
            "summary": f"{ok}/{len(s.board_ok)} boards, {st['faulted']} faulted, "
            f"SOC {soc['min']}..{soc['max']}",
            "string": st,
            "cycles": self._monitor.cycles,
            "cycles_missed": self._overruns,
            "boards_silent": silent,
            "balancing_writes": self._writer.writes,
            "balancing_plan": self._monitor.estimator.board_mask.tolist(),
            **self._outbox.counts(),
            "lines": lines,
        }

    async def close(self) -> None:
        try:
            await self._flush(time.time())
        finally:
            if self._writer.active:
                # Stop bleeding now rather than at the boards' own timeout.
                zeros = np.zeros(self._rack.n_boards, dtype=np.uint16)
                with contextlib.suppress(GatewayError, OSError, TimeoutError):
                    await asyncio.wait_for(self._rack.write_balancing(zeros, 0.0), 2.0)
            if self._recorder is not None:
                self._recorder.close()
            self._rack.close()


def build(ctx: DaemonContext) -> BmsDaemon:
    cfg = ctx.config.section("bms", BmsConfig)
    assert cfg is not None  # the runtime builds only enabled daemons
    return BmsDaemon(ctx, cfg)
