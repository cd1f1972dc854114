"""The summary window every field daemon runs: sleep to the window's end, summarise, send, beat.

One loop for all of them, so that they agree on what a window is: windows end on wall-clock
multiples of their length (summaries from many gateways line up upstream), the watchdog is fed only
after a window was really sent, and ``close`` at shutdown sends the partial window the same way
(it is data too: a restart must lose nothing that was read). A wall-clock step (NTP) is handled by
:class:`gateway.core.clock.WindowClock`: the window it falls in keeps its length and is stamped
on the clock it began on (its ``start`` and ``end`` agree); the next window is on the new clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from gateway.core.clock import WindowClock
from gateway.core.notify import Heartbeats
from gateway.core.supervisor import LoopFactory

log = logging.getLogger(__name__)

# A window may end late by this much (a slow spool write, a busy CPU) before the watchdog calls
# the loop stalled; it must also have seen a window end, hence twice the window.
_SLACK_S = 10.0

Summarise = Callable[[float], list[dict[str, Any]]]


class SummarySink(Protocol):
    """Where summaries go (the daemon's Outbox; core does not import the spool)."""

    async def put_summaries(self, bodies: list[dict[str, Any]], ts: float) -> None: ...


class SummaryWindows:
    def __init__(
        self,
        window: float,
        summarise: Summarise,
        sink: SummarySink,
        beats: Heartbeats,
        beat_name: str,
    ) -> None:
        """``summarise(now)`` closes the window ending ``now`` and returns its bodies (none when
        there is nothing to say: a window with no completed cycle sends no row)."""
        self.window = window
        self._summarise = summarise
        self._sink = sink
        self._beats = beats
        self._beat_name = beat_name

    def loop(self) -> tuple[LoopFactory, float]:
        """The supervised loop and its watchdog allowance, as ``Daemon.loops`` wants them."""
        return self.run, 2 * self.window + _SLACK_S

    async def close(self, now: float) -> None:
        bodies = self._summarise(now)
        if bodies:
            await self._sink.put_summaries(bodies, now)

    async def run(self) -> None:
        clock = WindowClock(self.window)
        while True:
            end = await clock.next_end()
            if clock.last_step is not None:
                log.warning(
                    "%s: the wall clock stepped by %+.1f s; this window is stamped on the clock "
                    "it began on, the next ones on the new one",
                    self._beat_name,
                    clock.last_step,
                )
            await self.close(end)
            self._beats.beat(self._beat_name)
