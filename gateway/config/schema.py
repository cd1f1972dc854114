"""The whole config: root sections plus every registered domain section, validated at once before
any device or broker is touched."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.config.issues import IssueSink, check_keys
from gateway.config.loader import RawConfig, read_config
from gateway.config.registry import Registry, Section, SectionConfig, SectionInput
from gateway.config.root import (
    ROOT_TABLES,
    GatewaySettings,
    SpoolSettings,
    parse_gateway,
    parse_spool,
)
from gateway.core.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    files: tuple[Path, ...]
    gateway: GatewaySettings
    spool: SpoolSettings
    # Parsed domain sections by name, in start order. A process that runs one daemon holds only
    # that daemon's section: the uplink never parses register maps, a field daemon never reads
    # the broker's secrets.
    sections: Mapping[str, Any]
    registered: tuple[Section, ...] = ()

    def daemons(self) -> list[str]:
        """The daemons this config enables, in start order (producers before the uplink)."""
        return [
            s.name
            for s in self.registered
            if self.sections.get(s.name) is not None and self.sections[s.name].enabled
        ]

    def section(self, name: str, kind: type[T]) -> T | None:
        """The parsed section ``name``, checked to be a ``kind``; None when it is not configured."""
        value = self.sections.get(name)
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"section {name} is a {type(value).__name__}, not a {kind.__name__}")
        return value

    def definition(self, name: str) -> Section:
        for s in self.registered:
            if s.name == name:
                return s
        raise KeyError(name)


def _tables(sink: IssueSink, data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    tables = {}
    for name in names:
        value = data.get(name, {})
        if not isinstance(value, dict):
            sink.error(name, f"expected a table, got {type(value).__name__}")
            value = {}
        tables[name] = value
    return tables


def build_config(
    raw: RawConfig,
    env: Mapping[str, str] | None = None,
    only: str | None = None,
    registry: Registry | None = None,
    *,
    read_secrets: bool = True,
) -> Config:
    """Validate the merged tree; raise one ConfigError listing every problem.

    ``only`` names the one daemon a process runs: its section is validated in full together with
    the shared ones (gateway, spool), other daemons' sections are left to their own
    processes. A typo in the battery section must not stop the uplink from delivering the
    backlog, and the uplink should not load numpy to check register maps it never reads.
    ``gridgate check-config`` (only=None) validates everything.
    """
    env = os.environ if env is None else env
    registry = Registry.installed() if registry is None else registry
    sink = IssueSink(raw.origin)
    data = raw.data
    check_keys(sink, "", data, set(ROOT_TABLES) | registry.table_names())
    root = _tables(sink, data, ROOT_TABLES)
    if "gateway" not in data:
        sink.error("gateway", "required table is missing (it names the site and the gateway id)")
    gateway = parse_gateway(sink, root["gateway"], env)
    spool = parse_spool(sink, root["spool"], gateway.state_dir)
    sections: dict[str, Any] = {}
    registered = registry.sections(only)
    for section in registered:
        present = frozenset(t for t in section.tables if t in data)
        if not present and not section.parse_when_absent:
            continue
        given = SectionInput(
            sink,
            _tables(sink, data, section.tables),
            present,
            gateway,
            raw.main.parent,
            env,
            read_secrets,
        )
        try:
            parsed: SectionConfig | None = section.parse(given)
        except OSError as exc:
            # A check that looks at the filesystem (a CA file, a profile directory) met a path
            # this user may not see: report it at the section instead of dying with a traceback.
            where = f" {exc.filename}" if exc.filename else ""
            sink.error(section.name, f"cannot check{where}: {exc.strerror or exc}")
            continue
        if parsed is not None:
            sections[section.name] = parsed
    sink.raise_if_any()
    return Config(tuple(raw.files), gateway, spool, sections, tuple(registered))


def load_config(
    main: Path,
    env: Mapping[str, str] | None = None,
    only: str | None = None,
    *,
    read_secrets: bool = True,
) -> Config:
    return build_config(read_config(main), env, only, read_secrets=read_secrets)


def load_or_report(
    main: Path,
    env: Mapping[str, str] | None = None,
    only: str | None = None,
    *,
    read_secrets: bool = True,
) -> Config | None:
    """For commands: the config, or None after printing every issue to stderr (exit 78 then).

    ``read_secrets=False`` for commands that never use them: ``gridgate status`` and ``points``
    run in a technician's shell, where only the uplink's unit holds the MQTT credential.
    """
    try:
        return load_config(main, env, only, read_secrets=read_secrets)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{len(exc.issues)} problem(s) found", file=sys.stderr)
        return None
