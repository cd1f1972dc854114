"""The root sections every process validates: ``[gateway]`` (who this gateway is, where its state
lives) and ``[spool]`` (the durable queue between the daemons)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.rules import absolute_path, one_of, ranged, resolved_path

# Site and gateway ids become MQTT topic levels: no wildcards, no separators, nothing a broker
# ACL or a Sparkplug group id would choke on.
_TOPIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_STATE_DIR = "/var/lib/gridgate"
ROOT_TABLES = ("gateway", "spool")


@dataclass(frozen=True)
class GatewaySettings:
    site: str
    gateway_id: str
    state_dir: Path
    runtime_dir: Path  # status files: tmpfs on a gateway, so they do not wear the SD card
    log_level: str
    status_interval: float


@dataclass(frozen=True)
class SpoolSettings:
    path: Path
    max_bytes: int
    when_full: str  # "drop_oldest" | "reject_new"
    synchronous: str  # "full" survives a power cut, "normal" a process crash


def _topic_id(sink: IssueSink, path: str, table: Mapping[str, Any], key: str) -> str:
    value = take(sink, path, table, key, str)
    if isinstance(value, str) and not _TOPIC_ID.match(value):
        sink.error(
            join(path, key),
            "must be 1-64 characters of A-Z a-z 0-9 _ - (it is an MQTT topic level)",
        )
    return value or ""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _without_control(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str
) -> Mapping[str, Any]:
    """``table``, minus ``key`` when its value holds a control character (reported here).

    A NUL passed the rules and failed later in the first system call (a traceback in the daemon);
    a newline in a directory name splits log lines. The key's default is used instead.
    """
    value = table.get(key)
    if isinstance(value, str) and _CONTROL.search(value):
        sink.error(join(path, key), "must not contain control characters")
        return {k: v for k, v in table.items() if k != key}
    return table


_NAME_MAX, _PATH_MAX = 255, 4095


def path_problem(p: str | Path, *, directory: bool) -> str | None:
    """Why ``p`` can never be used as a directory (or a regular file), found without creating
    anything; None when it may be. Control characters, over-long names, a file where a
    directory goes (or the reverse), a device or FIFO where a file goes."""
    if _CONTROL.search(str(p)):
        return "must not contain control characters"
    p = Path(p)
    if len(os.fsencode(p)) > _PATH_MAX:
        return f"longer than {_PATH_MAX} bytes"
    if any(len(os.fsencode(part)) > _NAME_MAX for part in p.parts):
        return f"a name in the path is longer than {_NAME_MAX} bytes"
    # The first part that exists must be a directory (or, for a file, a regular file). A part
    # this user may not look into is left to the daemon's user (check-config may run as another).
    try:
        if not directory and p.exists():
            if p.is_dir():
                return f"{p} is a directory"
            return None if p.is_file() else f"{p} is not a regular file"
        for probe in [p, *p.parents] if directory else list(p.parents):
            if probe.exists():
                return None if probe.is_dir() else f"{probe} is not a directory"
    except OSError:
        return None
    return None


def _check_usable(sink: IssueSink, where: str, p: Path, *, directory: bool) -> None:
    reason = path_problem(p, directory=directory)
    if reason is not None:
        sink.error(where, reason)


def _default_state_dir(env: Mapping[str, str]) -> str:
    # systemd's StateDirectory= exports STATE_DIRECTORY; honour it so units need no extra config.
    return env.get("STATE_DIRECTORY", DEFAULT_STATE_DIR).split(":")[0]


def parse_gateway(
    sink: IssueSink, table: Mapping[str, Any], env: Mapping[str, str]
) -> GatewaySettings:
    path = "gateway"
    check_keys(
        sink,
        path,
        table,
        {"site", "id", "state_dir", "runtime_dir", "log_level", "status_interval"},
    )
    site = _topic_id(sink, path, table, "site")
    gid = _topic_id(sink, path, table, "id")
    # The environment's default is checked like a written value: it is not the code's.
    table = _without_control(sink, path, table, "state_dir")
    table = _without_control(sink, path, table, "runtime_dir")
    state_table = {"state_dir": _default_state_dir(env), **table}
    state = absolute_path(sink, path, state_table, "state_dir", DEFAULT_STATE_DIR)
    level = one_of(sink, path, table, "log_level", "info", _LOG_LEVELS)
    interval = ranged(sink, path, table, "status_interval", 5.0, 0.1, 3600.0, unit="seconds")
    # The packaged layout puts status in /run (tmpfs); any other state dir keeps its own, so a
    # demo or a test never needs root.
    default_run = "/run/gridgate" if state == Path(DEFAULT_STATE_DIR) else str(state / "run")
    runtime_dir = absolute_path(sink, path, table, "runtime_dir", default_run)
    _check_usable(sink, join(path, "state_dir"), state, directory=True)
    _check_usable(sink, join(path, "runtime_dir"), runtime_dir, directory=True)
    return GatewaySettings(site, gid, state, runtime_dir, level, interval)


def parse_spool(sink: IssueSink, table: Mapping[str, Any], state_dir: Path) -> SpoolSettings:
    path = "spool"
    check_keys(sink, path, table, {"file", "max_mb", "when_full", "synchronous"})
    table = _without_control(sink, path, table, "file")
    spool_path = resolved_path(sink, path, table, "file", "spool.sqlite", state_dir)
    _check_usable(sink, join(path, "file"), spool_path, directory=False)
    max_mb = ranged(sink, path, table, "max_mb", 256.0, 1.0, 1_000_000.0, unit="MB")
    when_full = one_of(sink, path, table, "when_full", "drop_oldest", ("drop_oldest", "reject_new"))
    # "full" survives a power cut, "normal" a process crash
    sync = one_of(sink, path, table, "synchronous", "full", ("full", "normal"))
    return SpoolSettings(spool_path, int(max_mb * 1_000_000), when_full, sync)
