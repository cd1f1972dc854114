"""systemd readiness and a watchdog that only barks while the loops make real progress.

A ping on a timer alone proves that the event loop runs, not that the daemon works: a poll loop
stuck on a dead bus would keep being "alive". So each loop reports progress into
:class:`Heartbeats`, and the watchdog ping is sent only while every registered loop has reported
within its own allowance.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping

import sdnotify

log = logging.getLogger(__name__)


class Notifier:
    """sd_notify through the ``sdnotify`` package; a no-op without NOTIFY_SOCKET."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._sd = sdnotify.SystemdNotifier() if env.get("NOTIFY_SOCKET") else None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is meant for; a child must not inherit it.
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval: float | None = (
            int(usec) / 1e6 if usec.isdigit() and mine and int(usec) > 0 else None
        )

    @property
    def active(self) -> bool:
        return self._sd is not None

    def send(self, state: str) -> None:
        if self._sd is not None:
            self._sd.notify(state)

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd >= 253 match the reload to its ExecReload; older ignore it.
        self.send(
            f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        )

    def stopping(self) -> None:
        self.send("STOPPING=1\nSTATUS=stopping")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")


class Heartbeats:
    """Last progress time of every supervised loop, on the monotonic clock."""

    def __init__(self) -> None:
        self._allow: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._waiting: set[str] = set()  # registered, no progress yet

    def register(self, name: str, allowance: float) -> None:
        """A loop that must show progress at least every ``allowance`` seconds."""
        self._allow[name] = allowance
        self._last[name] = time.monotonic()
        self._waiting.add(name)

    def unregister(self, name: str) -> None:
        self._allow.pop(name, None)
        self._last.pop(name, None)
        self._waiting.discard(name)

    def beat(self, name: str) -> None:
        if name in self._allow:
            self._last[name] = time.monotonic()
            self._waiting.discard(name)

    def pending_first(self) -> list[str]:
        """Loops that have not shown any progress since they were registered."""
        return sorted(self._waiting)

    def stalled(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        return sorted(n for n, allow in self._allow.items() if now - self._last[n] > allow)


async def watchdog_loop(notifier: Notifier, beats: Heartbeats) -> None:
    """Ping at half the watchdog interval while no loop is stalled; log once per stall episode."""
    interval = notifier.watchdog_interval
    if interval is None:
        return
    was_stalled: list[str] = []
    while True:
        stalled = beats.stalled()
        if stalled:
            if stalled != was_stalled:
                log.error("watchdog: withholding ping, no progress from %s", ", ".join(stalled))
        else:
            if was_stalled:
                log.warning("watchdog: progress resumed, pinging again")
            notifier.watchdog()
        was_stalled = stalled
        await asyncio.sleep(interval / 2)
