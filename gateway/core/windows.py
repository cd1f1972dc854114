"""The summary window every field daemon runs: sleep to the window's end, summarise, send, beat.

One loop for all of them, so that they agree on what a window is: windows end on wall-clock
multiples of their length (summaries from many gateways line up upstream), the watchdog is fed only
after a window was really sent, and ``close`` at shutdown sends the partial window the same way
(it is data too: a restart must lose nothing that was read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gateway.core.clock import sleep_to_window_end
from gateway.core.notify import Heartbeats
from gateway.core.supervisor import LoopFactory

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
        while True:
            await self.close(await sleep_to_window_end(self.window))
            self._beats.beat(self._beat_name)
