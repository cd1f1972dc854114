"""The durable store-and-forward spool: one SQLite file (WAL) shared by every daemon process.

Field daemons append rows in one transaction per batch; the uplink reads them in ``seq`` order and
deletes them only once the broker has acknowledged them. A row is durable as soon as
:meth:`Spool.append_many` returns. ``seq`` comes from ``AUTOINCREMENT`` so a number is never handed
out twice, even after the rows holding the highest numbers were deleted: upstream can use it to
detect duplicates and gaps.

The size bound covers the whole file: the WAL is checkpointed and truncated to its share, and the
pages in use in the database stay within the rest; the payload bytes of ordinary rows are counted
too, in a ``meta`` table updated in the same transaction as the rows. A full disk is met with the
same policy as a full bound (:meth:`Spool.append_many`). The spool's own
``spool_full`` alarm rows (``daemon = 'spool'``) are exempt from the bound and from dropping: the
alarm has to get through precisely when the spool is full.

Every method is a short blocking SQLite call; :class:`AsyncSpool` runs them in a worker thread so
an asyncio loop never stalls on an fsync or on another process holding the write lock.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

from gateway.core.errors import SpoolError, SpoolFullError
from gateway.spool.async_spool import AsyncSpool
from gateway.spool.opening import (
    OpenSettings,
    SpoolDiskFullError,
    check_settings,
    checkpoint,
    is_disk_full,
    open_or_recover,
    pages_in_use,
    wal_bytes,
)
from gateway.spool.queries import delete_oldest, delete_seqs, full_alarm, read_stats
from gateway.spool.rows import ALARM_KIND, SPOOL_DAEMON, NewRow, Policy, SpoolRow, SpoolStats

log = logging.getLogger(__name__)

Synchronous = Literal["full", "normal"]

_PAGE: Final = 4096  # SQLite's default page size, the one this build creates files with
_SHM_BYTES: Final = 32 * 1024  # the WAL index (-shm) of a WAL no longer than its limit


class _RejectedError(Exception):  # raised in a write: the policy refuses the batch, roll back
    pass


class Spool:
    """One connection to the spool file. Thread-safe; one instance per process is enough.

    ``max_bytes`` bounds the payload bytes of ordinary rows. When a batch does not fit,
    ``policy`` decides: ``drop_oldest`` deletes the oldest rows to make room, ``reject_new`` refuses
    the whole batch with :class:`SpoolFullError`. Either way the count is kept in the file and one
    ``spool_full`` alarm row is raised per episode; the episode ends once the uplink has drained
    the spool below ``low_water`` (a fraction of ``max_bytes``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        policy: Policy = "drop_oldest",
        synchronous: Synchronous = "full",
        low_water: float = 0.8,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        check_settings(max_bytes, policy, synchronous, low_water)
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.policy: Policy = policy
        self._low_water_bytes = int(max_bytes * low_water)
        self._lock = threading.Lock()
        # The bound covers the whole file: the WAL is checkpointed and truncated back to
        # `_wal_limit` whenever it grows past it, the shared-memory index takes 32 KiB, and the
        # pages in use in the database file stay within what is left.
        self._wal_limit = max(64 * 1024, min(max_bytes // 8, 4 * 1024 * 1024))
        self._db_cap_pages = max(8, (max_bytes - 2 * self._wal_limit - _SHM_BYTES) // _PAGE)
        self._unrecorded_rejects = 0  # refused while nothing could be written (a full disk)
        self._committed_rejects = 0
        self._disk_full = False
        self._after_commit: list[tuple[int, str, tuple[object, ...]]] = []
        self._busy_timeout_ms = int(busy_timeout_ms)
        settings = OpenSettings(synchronous, busy_timeout_ms, self._wal_limit)
        self._db, self.moved_aside, why = open_or_recover(self.path, settings)
        if self.moved_aside is not None:
            alarm = {"alarm": "spool_corrupt", "active": True, "moved_to": str(self.moved_aside)}
            with self._write():
                self._insert_alarm({**alarm, "reason": why})

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction; the caller holds no lock. Rolls back on any error."""
        with self._lock:
            self._after_commit = []  # log lines of what only happened if the commit succeeds
            self._committed_rejects = 0
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")  # may fail too (a full disk): then roll back
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls back by itself after some errors
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise
            for level, msg, args in self._after_commit:
                log.log(level, msg, *args)
            self._unrecorded_rejects -= self._committed_rejects
            self._committed_rejects = 0

    # -- producers ------------------------------------------------------------------------------

    def append(
        self, daemon: str, kind: str, body: Mapping[str, Any], ts: float | None = None
    ) -> int:
        """Append one row built from a JSON-able dict; return its seq."""
        return self.append_many([NewRow.from_body(daemon, kind, body, ts)])[0]

    def append_many(self, rows: Iterable[NewRow]) -> list[int]:
        """Append a batch in one transaction; return the seqs assigned, in order.

        Raises :class:`SpoolFullError` (nothing of the batch stored) when the policy is
        ``reject_new`` and the batch does not fit the bound or the disk; the rejection and the
        alarm are still recorded. Raises :class:`SpoolDiskFullError` when the disk is full and
        ``drop_oldest`` found nothing more to drop: the caller keeps the rows and retries.
        """
        batch = list(rows)
        if not batch:
            return []
        size = sum(len(r.payload) for r in batch)
        try:
            seqs = self._append(batch, size)
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise SpoolError(f"{self.path}: append of {len(batch)} rows failed: {exc}") from exc
            seqs = self._append_on_full_disk(batch, size, exc)
        if seqs is None:
            raise SpoolFullError(
                f"{self.path}: spool full (bound {self.max_bytes} bytes), "
                f"rejected {len(batch)} rows ({size} bytes)"
            )
        self._disk_full_over()
        return seqs

    def _append(self, batch: list[NewRow], size: int) -> list[int] | None:
        """The batch in one transaction, the bound kept by policy; None if rejected by policy."""
        try:
            with self._write():
                used = self._meta("bytes")
                if self.policy == "reject_new" and used + size > self.max_bytes:
                    raise _RejectedError
                seqs = [self._insert(r) for r in batch]
                used += size
                if self.policy == "reject_new" and self._pages_over() > 0:
                    raise _RejectedError  # the rollback takes the batch out again
                freed = self._drop_oldest(used - self.max_bytes) if used > self.max_bytes else 0
                while (over := self._pages_over()) > 0:
                    more = self._drop_oldest(over * _PAGE)
                    if not more:
                        break
                    freed += more
                used -= freed
                if freed:
                    self._raise_alarm(used, size)
                self._set("bytes", used)
                self._record_unrecorded()
        except _RejectedError:
            self._record_rejection(len(batch), size)
            return None
        finally:
            self._keep_wal_small()
        return seqs

    def _append_on_full_disk(
        self, batch: list[NewRow], size: int, exc: sqlite3.Error
    ) -> list[int] | None:
        """The disk is full: the same policy as a full bound, as far as a full disk allows."""
        self._disk_full_begins(exc)
        if self.policy == "reject_new":
            self._unrecorded_rejects += len(batch)
            return None
        for _attempt in range(4):
            self._checkpoint()  # the next write then reuses the WAL's space from its start
            try:
                with self._write():  # room from the oldest rows (the WAL's reserve takes this)
                    freed = self._drop_oldest(max(2 * size, 4 * _PAGE))
                    if not freed:
                        break
                    self._set("bytes", self._meta("bytes") - freed)
                    self._raise_alarm(self._meta("bytes"), size, cause="disk_full")
                self._checkpoint()
                return self._append(batch, size)
            except sqlite3.Error as again:
                if not is_disk_full(again):
                    raise SpoolError(f"{self.path}: append failed: {again}") from again
        raise SpoolDiskFullError(
            f"{self.path}: disk full, {len(batch)} rows not written and nothing left to drop"
        )

    def _disk_full_begins(self, exc: BaseException) -> None:
        if not self._disk_full:
            log.error("spool %s: disk full (%s), applying policy %s", self.path, exc, self.policy)
        self._disk_full = True

    def _disk_full_over(self) -> None:
        if self._disk_full:
            log.info("spool %s: writable again", self.path)
        self._disk_full = False

    def probe_writable(self) -> None:
        """One small write: raises :class:`SpoolDiskFullError` while the disk is full."""
        try:
            with self._write():
                self._record_unrecorded()
                self._bump("rejected", 0)
        except sqlite3.Error as exc:
            kind = SpoolDiskFullError if is_disk_full(exc) else SpoolError
            raise kind(f"{self.path}: not writable: {exc}") from exc

    def _record_rejection(self, count: int, size: int) -> None:
        try:
            with self._write():
                self._bump("rejected", count)
                self._raise_alarm(self._meta("bytes"), size)
                self._record_unrecorded()
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise
            self._unrecorded_rejects += count

    def _record_unrecorded(self) -> None:
        n = self._unrecorded_rejects
        if n:  # forgotten only once the count is committed
            self._bump("rejected", n)
            self._after_commit.append((logging.DEBUG, "%d rejections recorded", (n,)))
            self._committed_rejects = n

    def _pages_over(self) -> int:  # inside a write
        return pages_in_use(self._db) - self._db_cap_pages

    def _keep_wal_small(self) -> None:
        """Checkpoint and truncate the WAL once it is past its share of the bound."""
        if wal_bytes(self.path) > self._wal_limit:
            self._checkpoint()

    def _checkpoint(self) -> None:
        with self._lock:
            checkpoint(self._db, self._busy_timeout_ms)

    def _insert(self, row: NewRow) -> int:
        cur = self._db.execute(
            "INSERT INTO spool (ts, daemon, kind, payload) VALUES (?, ?, ?, ?)",
            (row.ts, row.daemon, row.kind, row.payload),
        )
        seq = cur.lastrowid
        assert seq is not None  # an INSERT into a rowid table always sets it
        return seq

    def _drop_oldest(self, excess: int) -> int:
        """Delete the oldest ordinary rows until ``excess`` bytes are freed; return bytes freed."""
        freed, dropped = delete_oldest(self._db, excess)
        if dropped:
            self._bump("dropped", dropped)
        return freed

    def _raise_alarm(self, used: int, size: int, cause: str = "bound") -> None:
        """Insert the spool_full alarm row once per episode (inside the caller's transaction)."""
        if self._meta("alarm_active"):
            return
        self._set("alarm_active", 1)
        self._bump("alarms_raised", 1)
        body = full_alarm(self._db, self.policy, cause, used, self.max_bytes)
        self._insert_alarm({**body, "batch_bytes": size})
        self._after_commit.append(
            (
                logging.WARNING,
                "spool %s: full (%s, %d of %d bytes), policy %s: spool_full alarm raised",
                (self.path, cause, used, self.max_bytes, self.policy),
            )
        )

    def _insert_alarm(self, body: dict[str, Any]) -> None:
        self._insert(NewRow.from_body(SPOOL_DAEMON, ALARM_KIND, body))

    def _clear_alarm_if_drained(self, used: int) -> None:
        if used >= self._low_water_bytes or not self._meta("alarm_active"):
            return
        self._set("alarm_active", 0)
        self._insert_alarm(full_alarm(self._db, None, None, used, self.max_bytes))
        self._after_commit.append(
            (
                logging.INFO,
                "spool %s: drained to %d bytes, spool_full alarm cleared",
                (self.path, used),
            )
        )

    # -- the uplink ------------------------------------------------------------------------------

    def peek(self, after_seq: int = 0, limit: int = 100) -> list[SpoolRow]:
        """The oldest ``limit`` rows with ``seq > after_seq``, in seq order (nothing is removed)."""
        try:
            with self._lock:
                cur = self._db.execute(
                    "SELECT seq, ts, daemon, kind, payload FROM spool WHERE seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                )
                return [SpoolRow(s, t, d, k, bytes(p)) for s, t, d, k, p in cur.fetchall()]
        except sqlite3.Error as exc:
            raise SpoolError(f"{self.path}: peek failed: {exc}") from exc

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete rows the broker acknowledged, in one transaction; return how many were deleted.

        Seqs that are gone already (dropped by ``drop_oldest``, acked twice) are ignored.
        """
        wanted = list(seqs)
        if not wanted:
            return 0
        deleted = 0
        try:
            with self._write():
                deleted, freed = delete_seqs(self._db, wanted)
                used = self._meta("bytes") - freed
                self._set("bytes", used)
                self._clear_alarm_if_drained(used)
        except sqlite3.Error as exc:
            kind = SpoolDiskFullError if is_disk_full(exc) else SpoolError
            raise kind(f"{self.path}: ack of {len(wanted)} rows failed: {exc}") from exc
        finally:
            self._keep_wal_small()
        return deleted

    # -- status ----------------------------------------------------------------------------------

    def depth(self) -> int:
        """Rows waiting for the broker (including the spool's own alarm rows)."""
        try:
            with self._lock:
                return int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])
        except sqlite3.Error as exc:
            raise SpoolError(f"{self.path}: depth failed: {exc}") from exc

    def stats(self) -> SpoolStats:
        try:
            with self._lock:
                return read_stats(self._db, self.max_bytes, self.policy)
        except sqlite3.Error as exc:
            raise SpoolError(f"{self.path}: stats failed: {exc}") from exc

    # -- meta helpers (call inside a transaction) ------------------------------------------------

    def _meta(self, key: str) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def _set(self, key: str, value: int) -> None:
        self._db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))

    def _bump(self, key: str, by: int) -> None:
        self._db.execute("UPDATE meta SET value = value + ? WHERE key = ?", (by, key))


# Importers (the outbox, the runtime, the uplink) take the row types and the async face from here.
__all__ = [
    "ALARM_KIND",
    "SPOOL_DAEMON",
    "AsyncSpool",
    "NewRow",
    "Policy",
    "Spool",
    "SpoolDiskFullError",
    "SpoolRow",
    "SpoolStats",
    "Synchronous",
]
