"""The durable store-and-forward spool: one SQLite file (WAL) shared by every daemon process.

Field daemons append rows in one transaction per batch; the uplink reads them in ``seq`` order and
deletes them only once the broker has acknowledged them. A row is durable as soon as
:meth:`Spool.append_many` returns. ``seq`` comes from ``AUTOINCREMENT`` so a number is never handed
out twice, even after the rows holding the highest numbers were deleted: upstream can use it to
detect duplicates and gaps.

The size bound counts payload bytes of ordinary rows in a ``meta`` table updated in the same
transaction as the rows (so it can never drift, whichever process crashed). The spool's own
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
from types import TracebackType
from typing import Any, Final, Literal

from gateway.core.errors import SpoolError, SpoolFullError
from gateway.spool.async_spool import AsyncSpool
from gateway.spool.rows import ALARM_KIND, SPOOL_DAEMON, NewRow, Policy, SpoolRow, SpoolStats
from gateway.spool.schema import create_or_check

log = logging.getLogger(__name__)

Synchronous = Literal["full", "normal"]

_CHUNK: Final = 500  # stay far below SQLite's bound-parameter limit


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
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        if policy not in ("drop_oldest", "reject_new"):
            raise ValueError(f"policy must be 'drop_oldest' or 'reject_new', got {policy!r}")
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        if not 0.0 < low_water < 1.0:
            raise ValueError(f"low_water must be within (0, 1), got {low_water}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.policy: Policy = policy
        self._low_water_bytes = int(max_bytes * low_water)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below), so a
            # read-then-write never has to upgrade its lock, which busy_timeout cannot wait for.
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            with self._write():
                create_or_check(self._db, self.path)
        except sqlite3.Error as exc:
            raise SpoolError(f"{self.path}: cannot open spool: {exc}") from exc

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction; the caller holds no lock. Rolls back on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- producers ------------------------------------------------------------------------------

    def append(
        self, daemon: str, kind: str, body: Mapping[str, Any], ts: float | None = None
    ) -> int:
        """Append one row built from a JSON-able dict; return its seq."""
        return self.append_many([NewRow.from_body(daemon, kind, body, ts)])[0]

    def append_many(self, rows: Iterable[NewRow]) -> list[int]:
        """Append a batch in one transaction; return the seqs assigned, in order.

        Raises :class:`SpoolFullError` (nothing of the batch stored) when the policy is
        ``reject_new`` and the batch does not fit; the rejection and the alarm are still recorded.
        """
        batch = list(rows)
        if not batch:
            return []
        size = sum(len(r.payload) for r in batch)
        try:
            with self._write():
                used = self._meta("bytes")
                if used + size > self.max_bytes and self.policy == "reject_new":
                    self._bump("rejected", len(batch))
                    self._raise_alarm(used, size)
                    rejected = True
                else:
                    rejected = False
                    seqs = [self._insert(r) for r in batch]
                    used += size
                    if used > self.max_bytes:
                        used -= self._drop_oldest(used - self.max_bytes)
                        self._raise_alarm(used, size)
                    self._set("bytes", used)
        except sqlite3.Error as exc:
            raise SpoolError(f"{self.path}: append of {len(batch)} rows failed: {exc}") from exc
        if rejected:
            raise SpoolFullError(
                f"{self.path}: spool full ({used} of {self.max_bytes} bytes), "
                f"rejected {len(batch)} rows ({size} bytes)"
            )
        return seqs

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
        freed = 0
        dropped = 0
        last = None
        cur = self._db.execute(
            "SELECT seq, length(payload) FROM spool WHERE daemon != ? ORDER BY seq",
            (SPOOL_DAEMON,),
        )
        for seq, length in cur:
            freed += length
            dropped += 1
            last = seq
            if freed >= excess:
                break
        cur.close()
        if last is not None:
            self._db.execute(
                "DELETE FROM spool WHERE seq <= ? AND daemon != ?", (last, SPOOL_DAEMON)
            )
            self._bump("dropped", dropped)
        return freed

    def _raise_alarm(self, used: int, size: int) -> None:
        """Insert the spool_full alarm row once per episode (inside the caller's transaction)."""
        if self._meta("alarm_active"):
            return
        self._set("alarm_active", 1)
        self._bump("alarms_raised", 1)
        body = {
            "alarm": "spool_full",
            "active": True,
            "policy": self.policy,
            "bytes": used,
            "max_bytes": self.max_bytes,
            "batch_bytes": size,
            "dropped": self._meta("dropped"),
            "rejected": self._meta("rejected"),
        }
        self._insert(NewRow.from_body(SPOOL_DAEMON, ALARM_KIND, body))
        log.warning(
            "spool %s: full (%d of %d bytes), policy %s: raising spool_full alarm",
            self.path,
            used,
            self.max_bytes,
            self.policy,
        )

    def _clear_alarm_if_drained(self, used: int) -> None:
        if used >= self._low_water_bytes or not self._meta("alarm_active"):
            return
        self._set("alarm_active", 0)
        body = {
            "alarm": "spool_full",
            "active": False,
            "bytes": used,
            "max_bytes": self.max_bytes,
            "dropped": self._meta("dropped"),
            "rejected": self._meta("rejected"),
        }
        self._insert(NewRow.from_body(SPOOL_DAEMON, ALARM_KIND, body))
        log.info("spool %s: drained to %d bytes, spool_full alarm cleared", self.path, used)

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
                freed = 0
                for i in range(0, len(wanted), _CHUNK):
                    chunk = wanted[i : i + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    cur = self._db.execute(
                        f"DELETE FROM spool WHERE seq IN ({marks}) RETURNING daemon, "
                        "length(payload)",
                        chunk,
                    )
                    for daemon, length in cur.fetchall():
                        deleted += 1
                        if daemon != SPOOL_DAEMON:
                            freed += length
                used = self._meta("bytes") - freed
                self._set("bytes", used)
                self._clear_alarm_if_drained(used)
        except sqlite3.Error as exc:
            raise SpoolError(f"{self.path}: ack of {len(wanted)} rows failed: {exc}") from exc
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
                self._db.execute("BEGIN")  # one consistent snapshot for every number below
                try:
                    depth, oldest_seq, oldest_ts = self._db.execute(
                        "SELECT count(*), min(seq), "
                        "(SELECT ts FROM spool ORDER BY seq LIMIT 1) FROM spool"
                    ).fetchone()
                    row = self._db.execute(
                        "SELECT seq FROM sqlite_sequence WHERE name = 'spool'"
                    ).fetchone()
                    meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
                finally:
                    self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise SpoolError(f"{self.path}: stats failed: {exc}") from exc
        return SpoolStats(
            depth=int(depth),
            bytes=int(meta["bytes"]),
            max_bytes=self.max_bytes,
            policy=self.policy,
            oldest_seq=oldest_seq,
            oldest_ts=oldest_ts,
            last_seq=int(row[0]) if row else 0,
            dropped=int(meta["dropped"]),
            rejected=int(meta["rejected"]),
            alarm_active=bool(meta["alarm_active"]),
            alarms_raised=int(meta["alarms_raised"]),
        )

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
    "SpoolRow",
    "SpoolStats",
    "Synchronous",
]
