"""What the spool stores and reports: rows in, rows out, and its statistics."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

Policy = Literal["drop_oldest", "reject_new"]

SPOOL_DAEMON: Final = "spool"  # rows written by the spool itself (its alarms)
ALARM_KIND: Final = "alarm"


class NewRow(NamedTuple):
    """A row to append; ``seq`` is assigned by the spool."""

    ts: float
    daemon: str
    kind: str
    payload: bytes

    @classmethod
    def from_body(
        cls, daemon: str, kind: str, body: Mapping[str, Any], ts: float | None = None
    ) -> NewRow:
        """Build a row from a JSON-able dict (``ts`` defaults to now, wall clock)."""
        data = json.dumps(body, separators=(",", ":")).encode()
        return cls(time.time() if ts is None else ts, daemon, kind, data)


@dataclass(frozen=True)
class SpoolRow:
    """A row as stored: what the uplink encodes and publishes."""

    seq: int
    ts: float
    daemon: str
    kind: str
    payload: bytes


@dataclass(frozen=True)
class SpoolStats:
    """Everything ``gridgate status`` shows about the spool."""

    depth: int
    bytes: int
    max_bytes: int
    policy: Policy
    oldest_seq: int | None
    oldest_ts: float | None
    last_seq: int
    dropped: int
    rejected: int
    alarm_active: bool
    alarms_raised: int


__all__ = ["ALARM_KIND", "SPOOL_DAEMON", "NewRow", "Policy", "SpoolRow", "SpoolStats"]
