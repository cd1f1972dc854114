"""Read the main TOML file and its ``conf.d/*.toml`` drop-ins into one tree, remembering which file
set which key so that every error can name the file a technician has to edit."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigError, ConfigIssue

DEFAULT_PATH = Path("/etc/gridgate/gridgate.toml")


@dataclass
class RawConfig:
    """The merged tree plus, for every table and leaf path, the file that last wrote it."""

    main: Path
    data: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    _origin: dict[str, str] = field(default_factory=dict)

    def origin(self, path: str) -> str:
        """The file responsible for ``path``: the longest recorded prefix wins."""
        probe = path
        while probe:
            if probe in self._origin:
                return self._origin[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return str(self.main)

    def merge(self, doc: dict[str, Any], file: str) -> None:
        _merge(self.data, doc, "", file, self._origin)


def _merge(
    dst: dict[str, Any], src: dict[str, Any], prefix: str, file: str, origin: dict[str, str]
) -> None:
    # Tables merge key by key so a drop-in can change one setting of a device; arrays and scalars
    # replace wholesale, because merging two lists of register points element-wise is never meant.
    for key, value in src.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            origin[path] = file
            _merge(dst[key], value, path, file, origin)
        else:
            dst[key] = value
            _record(value, path, file, origin)


def _record(value: Any, path: str, file: str, origin: dict[str, str]) -> None:
    origin[path] = file
    if isinstance(value, dict):
        for key, sub in value.items():
            _record(sub, f"{path}.{key}", file, origin)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _record(sub, f"{path}[{i}]", file, origin)


def dropin_dir(main: Path) -> Path:
    return main.parent / "conf.d"


def read_config(main: Path) -> RawConfig:
    """Parse the main file and every drop-in (name order); collect every unreadable file."""
    raw = RawConfig(main=main)
    issues: list[ConfigIssue] = []
    files = [main]
    ddir = dropin_dir(main)
    if ddir.is_dir():
        files += sorted(p for p in ddir.iterdir() if p.suffix == ".toml" and p.is_file())
    for path in files:
        try:
            with path.open("rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            issues.append(ConfigIssue(str(path), "", "file not found"))
            continue
        except PermissionError:
            issues.append(ConfigIssue(str(path), "", "permission denied"))
            continue
        except IsADirectoryError:
            issues.append(ConfigIssue(str(path), "", "is a directory, not a TOML file"))
            continue
        except tomllib.TOMLDecodeError as exc:
            issues.append(ConfigIssue(str(path), "", f"invalid TOML: {exc}"))
            continue
        except UnicodeDecodeError as exc:
            issues.append(ConfigIssue(str(path), "", f"not UTF-8 text: {exc.reason}"))
            continue
        raw.files.append(path)
        raw.merge(doc, str(path))
    if issues:
        raise ConfigError(issues)
    return raw
