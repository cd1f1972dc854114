"""The spool for asyncio code: every blocking SQLite call runs in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.spool.rows import NewRow, SpoolRow, SpoolStats

if TYPE_CHECKING:  # store.py re-exports AsyncSpool, so importing it at run time would be a cycle
    from gateway.spool.store import Spool


class AsyncSpool:
    """The same spool for asyncio code: each call runs in a worker thread.

    A commit with ``synchronous = full`` waits for fsync (milliseconds on an SD card, more under
    load) and another process may hold the write lock for up to ``busy_timeout``; neither may stall
    the event loop that also runs the MQTT session and the watchdog.
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    async def append_many(self, rows: Sequence[NewRow]) -> list[int]:
        return await asyncio.to_thread(self.spool.append_many, rows)

    async def peek(self, after_seq: int = 0, limit: int = 100) -> list[SpoolRow]:
        return await asyncio.to_thread(self.spool.peek, after_seq, limit)

    async def ack(self, seqs: Sequence[int]) -> int:
        return await asyncio.to_thread(self.spool.ack, seqs)

    async def depth(self) -> int:
        return await asyncio.to_thread(self.spool.depth)

    async def stats(self) -> SpoolStats:
        return await asyncio.to_thread(self.spool.stats)


__all__ = ["AsyncSpool"]
