"""The root sections every process validates: ``[gateway]`` (who this gateway is, where its state
lives) and ``[spool]`` (the durable queue between the daemons)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.issues import IssueSink, check_keys, join, take

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
    state_dir = take(sink, path, table, "state_dir", str, _default_state_dir(env))
    if isinstance(state_dir, str) and not Path(state_dir).is_absolute():
        sink.error(join(path, "state_dir"), f"must be an absolute path, got {state_dir!r}")
    level = take(sink, path, table, "log_level", str, "info")
    if level not in _LOG_LEVELS:
        sink.error(join(path, "log_level"), f"must be one of {', '.join(_LOG_LEVELS)}")
    interval = take(sink, path, table, "status_interval", float, 5.0)
    if interval is not None and not 0.1 <= interval <= 3600:
        sink.error(join(path, "status_interval"), "must be between 0.1 and 3600 seconds")
    state = Path(state_dir or "/")
    # The packaged layout puts status in /run (tmpfs); any other state dir keeps its own, so a
    # demo or a test never needs root.
    default_run = "/run/gridgate" if state == Path(DEFAULT_STATE_DIR) else str(state / "run")
    runtime_dir = take(sink, path, table, "runtime_dir", str, default_run)
    if (
        "runtime_dir" in table
        and isinstance(runtime_dir, str)
        and not Path(runtime_dir).is_absolute()
    ):
        sink.error(join(path, "runtime_dir"), f"must be an absolute path, got {runtime_dir!r}")
    return GatewaySettings(
        site, gid, state, Path(runtime_dir or default_run), level or "info", interval or 5.0
    )


def parse_spool(sink: IssueSink, table: Mapping[str, Any], state_dir: Path) -> SpoolSettings:
    path = "spool"
    check_keys(sink, path, table, {"file", "max_mb", "when_full", "synchronous"})
    file = take(sink, path, table, "file", str, "spool.sqlite")
    max_mb = take(sink, path, table, "max_mb", float, 256.0)
    if max_mb is not None and not 1 <= max_mb <= 1_000_000:
        sink.error(join(path, "max_mb"), "must be between 1 and 1000000 MB")
    when_full = take(sink, path, table, "when_full", str, "drop_oldest")
    if when_full not in ("drop_oldest", "reject_new"):
        sink.error(join(path, "when_full"), 'must be "drop_oldest" or "reject_new"')
    sync = take(sink, path, table, "synchronous", str, "full")
    if sync not in ("full", "normal"):
        sink.error(
            join(path, "synchronous"),
            'must be "full" (survives power loss) or "normal" (survives a crash)',
        )
    spool_path = Path(file or "spool.sqlite")
    if not spool_path.is_absolute():
        spool_path = state_dir / spool_path
    return SpoolSettings(
        spool_path, int((max_mb or 256.0) * 1_000_000), when_full or "", sync or ""
    )
