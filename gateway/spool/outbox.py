"""How a field daemon hands rows to the spool without ever losing them to a passing disk error.

A row that the spool could not take because of an I/O problem (disk full, a locked file, a flaky
SD card) stays here and goes in with the next write, in order, up to a bound; a row that the spool
*refused* under its ``reject_new`` policy is gone by policy (the spool counts it and raises its own
alarm). Either way the daemon's loop carries on: a spool problem must not stop the polling.

Summaries and alarms go through :meth:`Outbox.put_summaries` and :meth:`Outbox.put_alarms`, so
every daemon counts them the same way and an alarm is logged once, in one format, whichever daemon
raised it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.core.errors import SpoolError, SpoolFullError
from gateway.spool.store import AsyncSpool, NewRow

if TYPE_CHECKING:
    # Annotations only: gateway.core.alarms loads numpy, and the outbox must stay cheap to import.
    from gateway.core.alarms import AlarmEvent

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
        # What the daemon handed over (the status page's figures), whether or not written yet.
        self.summaries_sent = 0
        self.alarms_sent = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def counts(self) -> dict[str, int]:
        """The figures every daemon's status page shows for its outbox."""
        return {
            "summaries_sent": self.summaries_sent,
            "alarms_sent": self.alarms_sent,
            "spool_pending": self.pending,
        }

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

    async def put_summaries(self, bodies: list[dict[str, Any]], ts: float) -> None:
        """One window's summaries, one transaction: they become durable together."""
        await self.put("summary", bodies, ts)
        self.summaries_sent += len(bodies)

    async def put_alarms(self, events: Sequence[AlarmEvent], ts: float) -> None:
        """Alarm transitions at once, not with the next summary: an operator wants a tripped
        feeder, a cell over voltage or an early warning now. One line each in the log."""
        await self.put("alarm", [e.body() for e in events], ts)
        self.alarms_sent += len(events)
        for e in events:
            about = "".join(f" {x}" for x in (e.point, e.cause) if x)
            log.warning("%s: alarm %s %s: %s%s", self._daemon, e.alarm, e.state, e.device, about)

    async def flush(self) -> None:
        if not self._pending:
            return
        rows = list(self._pending)
        try:
            seqs = await self._spool.append_many(rows)
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
        # Once the commit returned (every seq in the range is from this transaction): the rows
        # hil_tests/test_power_cut.py holds the spool to after a power cut.
        log.debug("%s: spool: committed seqs %d..%d", self._daemon, seqs[0], seqs[-1])
        if self._failing is not None:
            log.info("%s: spool writable again, %d row(s) written", self._daemon, len(rows))
            self._failing = None

    def _note_failure(self, problem: str) -> None:
        # Once per kind of problem, not once per window.
        kind = problem.split(",", 1)[0]
        if self._failing != kind:
            log.error("%s: %s", self._daemon, problem)
        self._failing = kind
