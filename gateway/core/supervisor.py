"""Keeps a daemon's loops running: a loop that raises is logged with its cause and restarted after
a capped, jittered backoff, so one flaky device or a broker hiccup never takes the process down."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.core.backoff import Backoff

log = logging.getLogger(__name__)

LoopFactory = Callable[[], Coroutine[Any, Any, None]]

# A loop that ran this long before failing is considered to have been healthy: its next failure
# starts the backoff from the beginning again instead of from where the last crash left it.
_HEALTHY_AFTER = 60.0


class Supervisor:
    def __init__(self, name: str, backoff_initial: float = 1.0, backoff_cap: float = 60.0) -> None:
        self.name = name
        self._factories: dict[str, LoopFactory] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._backoff = (backoff_initial, backoff_cap)
        self.restarts: dict[str, int] = {}

    def add(self, name: str, factory: LoopFactory) -> None:
        if name in self._factories:
            raise ValueError(f"loop {name!r} is already supervised")
        self._factories[name] = factory
        self.restarts[name] = 0

    def start(self) -> None:
        for name, factory in self._factories.items():
            if name not in self._tasks:
                self._tasks[name] = asyncio.create_task(
                    self._keep(name, factory), name=f"{self.name}:{name}"
                )

    async def _keep(self, name: str, factory: LoopFactory) -> None:
        backoff = Backoff(*self._backoff)
        while True:
            started = time.monotonic()
            try:
                await factory()
                log.error("%s: loop %s returned unexpectedly; restarting", self.name, name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: loop %s failed", self.name, name)
            if time.monotonic() - started > _HEALTHY_AFTER:
                backoff.reset()
            delay = backoff.next()
            self.restarts[name] += 1
            log.info(
                "%s: restarting %s in %.1f s (restart %d)",
                self.name,
                name,
                delay,
                self.restarts[name],
            )
            await asyncio.sleep(delay)

    async def stop(self, timeout: float = 10.0) -> None:
        """Cancel every loop and wait (bounded) for their cleanup to finish."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                log.error(
                    "%s: loop %s did not stop within %.0f s", self.name, t.get_name(), timeout
                )
