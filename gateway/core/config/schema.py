"""The root of the config schema: ``[gateway]`` and ``[spool]`` here, daemon sections in their own
modules. Everything is checked before any device or broker is touched."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core.config.grid import GridConfig, parse_grid
from gateway.core.config.loader import RawConfig, read_config
from gateway.core.config.uplink import UplinkConfig, parse_uplink
from gateway.core.errors import ConfigError
from gateway.core.issues import IssueSink, check_keys, join, take

if TYPE_CHECKING:
    from gateway.core.config.bms import BmsConfig
    from gateway.core.config.plant import PlantConfig

# Site and gateway ids become MQTT topic levels: no wildcards, no separators, nothing a broker
# ACL or a Sparkplug group id would choke on.
_TOPIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_STATE_DIR = "/var/lib/gridgate"
_SECTIONS = {"gateway", "spool", "uplink", "grid", "modbus", "bms", "plant"}


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


@dataclass(frozen=True)
class Config:
    files: tuple[Path, ...]
    gateway: GatewaySettings
    spool: SpoolSettings
    uplink: UplinkConfig | None  # None in a field daemon's process: it never needs the broker
    grid: GridConfig | None
    bms: BmsConfig | None = None
    plant: PlantConfig | None = None

    def daemons(self) -> list[str]:
        """The daemons this config enables, in start order (producers before the uplink)."""
        names = []
        if self.grid is not None and self.grid.enabled:
            names.append("grid")
        if self.bms is not None and self.bms.enabled:
            names.append("bms")
        if self.plant is not None and self.plant.enabled:
            names.append("plant")
        if self.uplink is not None and self.uplink.enabled:
            names.append("uplink")
        return names


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


def build_config(
    raw: RawConfig, env: Mapping[str, str] | None = None, only: str | None = None
) -> Config:
    """Validate the merged tree; raise one ConfigError listing every problem.

    ``only`` names the one daemon a process runs: its section is validated in full together with
    the shared ones (gateway, spool), other daemons' sections are left to their own
    processes. A typo in the battery section must not stop the uplink from delivering the
    backlog, and the uplink should not load numpy to check register maps it never reads.
    ``gridgate check-config`` (only=None) validates everything.
    """
    env = os.environ if env is None else env
    sink = IssueSink(raw.origin)
    data = raw.data
    check_keys(sink, "", data, _SECTIONS)
    sections = {}
    for name in _SECTIONS:
        value = data.get(name, {})
        if not isinstance(value, dict):
            sink.error(name, f"expected a table, got {type(value).__name__}")
            value = {}
        sections[name] = value
    if "gateway" not in data:
        sink.error("gateway", "required table is missing (it names the site and the gateway id)")
    gateway = parse_gateway(sink, sections["gateway"], env)
    spool = parse_spool(sink, sections["spool"], gateway.state_dir)
    # Only the uplink holds the broker secrets: a field daemon never reads them (systemd gives the
    # credentials to the uplink's unit alone).
    uplink = (
        parse_uplink(sink, sections["uplink"], gateway, env) if only in (None, "uplink") else None
    )
    grid = bms = plant = None
    if "grid" in data and only in (None, "grid"):
        grid = parse_grid(sink, sections["grid"], sections["modbus"], raw.main.parent)
    if "modbus" in data and "grid" not in data:
        sink.error(
            "modbus", "modbus buses are configured but no daemon uses them ([grid] is missing)"
        )
    if "bms" in data and only in (None, "bms"):
        from gateway.core.config.bms import parse_bms  # the kernel's limit checks need numpy

        bms = parse_bms(sink, sections["bms"], gateway.state_dir)
    if "plant" in data and only in (None, "plant"):
        # asyncua (node ids) and the model's sidecar reader load only for the plant daemon
        from gateway.core.config.plant import parse_plant

        plant = parse_plant(sink, sections["plant"], gateway.state_dir, env)
    sink.raise_if_any()
    return Config(tuple(raw.files), gateway, spool, uplink, grid, bms, plant)


def load_config(
    main: Path, env: Mapping[str, str] | None = None, only: str | None = None
) -> Config:
    return build_config(read_config(main), env, only)


def load_or_report(
    main: Path, env: Mapping[str, str] | None = None, only: str | None = None
) -> Config | None:
    """For commands: the config, or None after printing every issue to stderr (exit 78 then)."""
    try:
        return load_config(main, env, only)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{len(exc.issues)} problem(s) found", file=sys.stderr)
        return None
