"""Opening the spool file: settings, waiting out another process's lock, recovering a corrupt file.

Three things go wrong when a daemon opens the spool in the field, and each has its answer here:

* **Another process holds the file** (the grid daemon is mid-commit, a checkpoint runs, ``gridgate
  status`` reads it). Some of SQLite's lock steps at open (switching to WAL, recovering the WAL
  index) answer ``SQLITE_BUSY`` at once without calling the busy handler, so ``busy_timeout`` alone
  is not enough: the whole open is retried with a capped, jittered backoff until the deadline.
* **The disk is full**: reported as :class:`SpoolDiskFullError` (``SQLITE_FULL`` or ``ENOSPC``), so
  callers can wait for space instead of giving up.
* **The file is corrupt** (truncated, a bad header, not a database at all): it is moved aside
  (``NAME.corrupt-UTCSTAMP``, with its WAL) and a fresh spool started; the caller raises an alarm.
  A lock file keeps two daemons opening at once from both moving files aside.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.core.errors import SpoolError
from gateway.spool.schema import create_or_check

log = logging.getLogger(__name__)

_SIDE_FILES: Final = ("-wal", "-shm")
_CHECKPOINT_WAIT_MS: Final = 200


class SpoolDiskFullError(SpoolError):
    """The file system holding the spool has no space left: nothing could be written."""


def check_settings(max_bytes: int, policy: str, synchronous: str, low_water: float) -> None:
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
    if policy not in ("drop_oldest", "reject_new"):
        raise ValueError(f"policy must be 'drop_oldest' or 'reject_new', got {policy!r}")
    if synchronous not in ("full", "normal"):
        raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
    if not 0.0 < low_water < 1.0:
        raise ValueError(f"low_water must be within (0, 1), got {low_water}")


class SpoolBusyError(SpoolError):
    """Another process held the spool for longer than the busy timeout."""


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "disk is full" in str(exc)
        )
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(exc)


def is_corrupt(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


@dataclass(frozen=True)
class OpenSettings:
    synchronous: str  # "full" | "normal"
    busy_timeout_ms: int
    wal_limit: int  # bytes the WAL is truncated to after a checkpoint


def connect(path: Path, s: OpenSettings) -> sqlite3.Connection:
    """Open, switch to WAL, create or check the schema; retried while another process is busy."""
    deadline = time.monotonic() + max(s.busy_timeout_ms, 1000) / 1000.0
    delay = 0.02
    while True:
        try:
            return _connect_once(path, s)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
            log.debug("spool %s: busy at open (%s), retrying in %.2f s", path, exc, delay)
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 0.5)


def _connect_once(path: Path, s: OpenSettings) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), so a read-then-write never
    # has to upgrade its lock, which busy_timeout cannot wait for.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(s.busy_timeout_ms)}")
        # Switching a file that is in WAL mode already takes a lock for nothing (and is one of the
        # steps that answer BUSY at once): ask first.
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolError(f"{path}: cannot switch to WAL mode (got {mode})")
        db.execute(f"PRAGMA synchronous = {s.synchronous.upper()}")
        db.execute(f"PRAGMA journal_size_limit = {int(s.wal_limit)}")
        db.execute(f"PRAGMA wal_autocheckpoint = {max(16, s.wal_limit // 2 // 4096)}")
        db.execute("BEGIN IMMEDIATE")
        try:
            create_or_check(db, path)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed: {problem}")
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def open_lock(path: Path) -> Iterator[None]:
    """Serialise opening (and recovering) the file between processes; best effort."""
    try:
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except PermissionError:  # a technician's read-only `gridgate status`: nothing to recover
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def move_aside(path: Path) -> Path:
    """Rename a corrupt spool (and its WAL and shared-memory files) out of the way; return where."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.replace(target)
    for side in _SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{side}").replace(f"{target}{side}")
    return target


def open_or_recover(path: Path, s: OpenSettings) -> tuple[sqlite3.Connection, Path | None, str]:
    """Open the spool; a corrupt file is moved aside first. Returns (db, moved_to, why)."""
    try:
        with open_lock(path):
            try:
                return connect(path, s), None, ""
            except sqlite3.DatabaseError as exc:
                if not is_corrupt(exc):
                    raise
                moved = move_aside(path)
                log.critical(
                    "spool %s: corrupt (%s), moved aside to %s, starting a fresh spool",
                    path,
                    exc,
                    moved,
                )
                return connect(path, s), moved, str(exc)
    except (sqlite3.Error, OSError) as exc:
        kind = SpoolDiskFullError if is_disk_full(exc) else SpoolError
        if isinstance(exc, sqlite3.Error) and is_busy(exc):
            kind = SpoolBusyError
        if isinstance(exc, OSError) and kind is SpoolError:
            raise
        raise kind(f"{path}: cannot open spool: {exc}") from exc


def pages_in_use(db: sqlite3.Connection) -> int:
    """Pages of the database file that hold data (free pages are reused before it grows)."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    return int(pages - free)


def wal_bytes(path: Path) -> int:
    try:
        return Path(f"{path}-wal").stat().st_size
    except FileNotFoundError:
        return 0


def checkpoint(db: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Copy the WAL into the database and reset it; the next write truncates it to its limit.

    RESTART waits for readers, so a steady stream of them cannot starve the reset. It waits
    briefly (it holds the write lock meanwhile; readers are one short peek); a busy reader or a
    full disk leaves it to the next commit.
    """
    with contextlib.suppress(sqlite3.Error):
        db.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
        try:
            db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        finally:
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")


def file_bytes(path: Path) -> int:
    """What the spool takes on disk: the database, its WAL and its shared-memory index."""
    total = 0
    for suffix in ("", *_SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            total += Path(f"{path}{suffix}").stat().st_size
    return total


__all__ = [
    "OpenSettings",
    "SpoolBusyError",
    "SpoolDiskFullError",
    "check_settings",
    "checkpoint",
    "connect",
    "file_bytes",
    "is_busy",
    "is_corrupt",
    "is_disk_full",
    "move_aside",
    "open_lock",
    "open_or_recover",
    "pages_in_use",
    "wal_bytes",
]
