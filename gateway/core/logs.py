"""Logging set-up: journald-friendly under systemd, timestamped on a terminal."""

from __future__ import annotations

import logging
import os
import sys

_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    """``<N>`` priority prefix (systemd's SyslogLevelPrefix) and no timestamp: journald adds one."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _SYSLOG_PRIORITY.get(record.levelno, 6)
        return f"<{prio}>{record.name}: {super().format(record)}"


def under_systemd() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if under_systemd():
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # pymodbus logs every failed transaction at ERROR; our drivers log the state change once.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
