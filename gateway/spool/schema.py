"""The spool file's tables, and creating or checking them when a process opens the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from gateway.core.errors import SpoolError

SCHEMA_VERSION: Final = 1  # PRAGMA user_version of a file this build writes

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spool (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL    NOT NULL,
    daemon  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    payload BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES
    ('bytes', 0), ('dropped', 0), ('rejected', 0), ('alarm_active', 0), ('alarms_raised', 0);
"""


def create_or_check(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables of a new file, or check an existing file's schema version.

    Call inside a write transaction, so two processes opening a new file do not race.
    """
    for stmt in SCHEMA.split(";"):
        if stmt.strip():
            db.execute(stmt)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    elif version != SCHEMA_VERSION:
        raise SpoolError(f"{path}: schema version {version}, this build knows {SCHEMA_VERSION}")


__all__ = ["SCHEMA", "SCHEMA_VERSION", "create_or_check"]
