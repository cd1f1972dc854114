"""The section registry: every domain owns its top-level tables and registers them.

A domain declares one :class:`Section` in its ``config`` module and names it in the
``gridgate.sections`` entry-point group (``setup.cfg``), once per top-level table it owns, the way
Home Assistant integrations own their ``CONFIG_SCHEMA``. The loader reads the table names from the
package metadata without importing anything and imports a section's module only when that section
is validated: a daemon process loads its own domain and no other, and this package names no domain.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.config.issues import IssueSink
from gateway.config.root import GatewaySettings
from gateway.core.errors import GatewayError

GROUP = "gridgate.sections"


class SectionConfig(Protocol):
    """What the runtime needs of every parsed section."""

    @property
    def enabled(self) -> bool: ...


@dataclass(frozen=True)
class SectionInput:
    """What a section's parser gets: its own tables ({} when absent) and the shared settings."""

    sink: IssueSink
    tables: Mapping[str, Mapping[str, Any]]
    present: frozenset[str]  # which of its tables the file actually has
    gateway: GatewaySettings
    config_dir: Path
    env: Mapping[str, str]
    read_secrets: bool = True  # False for commands that never use them (status, points)

    def table(self, name: str) -> Mapping[str, Any]:
        return self.tables.get(name, {})


@dataclass(frozen=True)
class Section:
    name: str  # the daemon's name and its main table
    tables: tuple[str, ...]  # every top-level table it owns, the main one first
    order: int  # start order of the daemons: producers before the uplink
    parse: Callable[[SectionInput], SectionConfig | None]
    daemon: str  # module whose build(ctx) makes the daemon; imported by the runtime only
    parse_when_absent: bool = False  # validate (with defaults) even when no table is written
    describe: Callable[[Any], list[str]] | None = None  # lines for `gridgate check-config`


class RegistryError(GatewayError):
    """The installed package metadata does not name the config sections."""


@dataclass(frozen=True)
class Registry:
    """Top-level table name -> entry point, read from metadata; sections load on demand."""

    entries: Mapping[str, importlib.metadata.EntryPoint]

    @classmethod
    def installed(cls) -> Registry:
        found = {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}
        if not found:
            raise RegistryError(
                f"no config sections registered (entry-point group {GROUP!r}): "
                "gridgate is not installed; run scripts/setup.sh or pip install it"
            )
        return cls(found)

    def table_names(self) -> frozenset[str]:
        return frozenset(self.entries)

    def sections(self, only: str | None = None) -> list[Section]:
        """The sections to validate (all, or the one daemon ``only`` names), in start order."""
        seen: dict[str, Section] = {}
        for table, ep in self.entries.items():
            if ep.value in seen or (only is not None and table != only):
                continue
            section = ep.load()
            if not isinstance(section, Section):
                raise RegistryError(f"{GROUP}: {table} = {ep.value} is not a Section")
            seen[ep.value] = section
        return sorted(seen.values(), key=lambda s: s.order)
