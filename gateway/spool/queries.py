"""The spool's larger queries, kept apart from the transaction logic in :mod:`store`."""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from gateway.spool.rows import SPOOL_DAEMON, Policy, SpoolStats

_CHUNK: Final = 500  # stay far below SQLite's bound-parameter limit


def delete_oldest(db: sqlite3.Connection, excess: int) -> tuple[int, int]:
    """Delete the oldest ordinary rows until ``excess`` payload bytes are freed (inside a write).

    The spool's own alarm rows stay. Returns (bytes freed, rows deleted).
    """
    freed = 0
    dropped = 0
    last = None
    if excess <= 0:
        return 0, 0
    cur = db.execute(
        "SELECT seq, length(payload) FROM spool WHERE daemon != ? ORDER BY seq", (SPOOL_DAEMON,)
    )
    for seq, length in cur:
        freed += length
        dropped += 1
        last = seq
        if freed >= excess:
            break
    cur.close()
    if last is not None:
        db.execute("DELETE FROM spool WHERE seq <= ? AND daemon != ?", (last, SPOOL_DAEMON))
    return freed, dropped


def delete_seqs(db: sqlite3.Connection, seqs: list[int]) -> tuple[int, int]:
    """Delete these rows (inside a write); return (rows deleted, bounded payload bytes freed)."""
    deleted = freed = 0
    for i in range(0, len(seqs), _CHUNK):
        chunk = seqs[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        cur = db.execute(
            f"DELETE FROM spool WHERE seq IN ({marks}) RETURNING daemon, length(payload)", chunk
        )
        for daemon, length in cur.fetchall():
            deleted += 1
            if daemon != SPOOL_DAEMON:
                freed += length
    return deleted, freed


def full_alarm(
    db: sqlite3.Connection, policy: Policy | None, cause: str | None, used: int, max_bytes: int
) -> dict[str, Any]:
    """The body of a spool_full alarm row: raised (with its policy and cause) or cleared."""
    body: dict[str, Any] = {"alarm": "spool_full", "active": policy is not None}
    if policy is not None:
        body.update(policy=policy, cause=cause)
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    return {**body, "bytes": used, "max_bytes": max_bytes, **_counts(meta)}


def _counts(meta: dict[str, int]) -> dict[str, int]:
    return {"dropped": int(meta["dropped"]), "rejected": int(meta["rejected"])}


def read_stats(db: sqlite3.Connection, max_bytes: int, policy: Policy) -> SpoolStats:
    """Every figure of :class:`SpoolStats` from one consistent snapshot."""
    db.execute("BEGIN")
    try:
        depth, oldest_seq, oldest_ts = db.execute(
            "SELECT count(*), min(seq), (SELECT ts FROM spool ORDER BY seq LIMIT 1) FROM spool"
        ).fetchone()
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.execute("COMMIT")
    return SpoolStats(
        depth=int(depth),
        bytes=int(meta["bytes"]),
        max_bytes=max_bytes,
        policy=policy,
        oldest_seq=oldest_seq,
        oldest_ts=oldest_ts,
        last_seq=int(row[0]) if row else 0,
        dropped=int(meta["dropped"]),
        rejected=int(meta["rejected"]),
        alarm_active=bool(meta["alarm_active"]),
        alarms_raised=int(meta["alarms_raised"]),
    )


__all__ = ["delete_oldest", "delete_seqs", "full_alarm", "read_stats"]
