"""How a field daemon hands rows to the spool without ever losing them to a passing disk error.

A row that the spool could not take because of an I/O problem (disk full, a locked file, a flaky
SD card) stays here and goes in with the next write, in order, up to a bound; a row that the spool
*refused* under its ``reject_new`` policy is gone by policy (the spool counts it and raises its own
alarm). Either way the daemon's loop carries on: a spool problem must not stop the polling.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from gateway.core.errors import SpoolError, SpoolFullError
from gateway.spool.store import AsyncSpool, NewRow

log = logging.getLogger(__name__)

# Rows held in memory while the spool cannot be written: about a day of one-minute summaries of
# ten meters. Past it the oldest are dropped and counted: memory on a gateway is finite too.
DEFAULT_MAX_PENDING = 20_000


class Outbox:
    def __init__(
        self, spool: AsyncSpool, daemon: str, max_pending: int = DEFAULT_MAX_PENDING
    ) -> None:
        self._spool = spool
        self._daemon = daemon
        self._pending: deque[NewRow] = deque()
        self._max_pending = max_pending
        self._failing: str | None = None
        self.written = 0
        self.rejected = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def put(self, kind: str, bodies: list[dict[str, Any]], ts: float) -> None:
        """Append ``bodies`` as rows of ``kind`` (one transaction with anything still pending)."""
        for body in bodies:
            self._pending.append(NewRow.from_body(self._daemon, kind, body, ts=ts))
        overflow = len(self._pending) - self._max_pending
        for _ in range(max(0, overflow)):
            self._pending.popleft()
            self.dropped += 1
        if overflow > 0:
            log.error(
                "%s: %d row(s) dropped, the spool has been unwritable too long",
                self._daemon,
                overflow,
            )
        await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        rows = list(self._pending)
        try:
            await self._spool.append_many(rows)
        except SpoolFullError as exc:
            self._pending.clear()
            self.rejected += len(rows)
            self._note_failure(f"spool full, {len(rows)} row(s) rejected by policy: {exc}")
            return
        except SpoolError as exc:
            self._note_failure(
                f"cannot write the spool, keeping {len(rows)} row(s) to retry: {exc}"
            )
            return
        self._pending.clear()
        self.written += len(rows)
        if self._failing is not None:
            log.info("%s: spool writable again, %d row(s) written", self._daemon, len(rows))
            self._failing = None

    def _note_failure(self, problem: str) -> None:
        # Once per kind of problem, not once per window.
        kind = problem.split(",", 1)[0]
        if self._failing != kind:
            log.error("%s: %s", self._daemon, problem)
        self._failing = kind
