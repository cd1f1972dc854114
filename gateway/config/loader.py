"""Read the main TOML file and its ``conf.d/*.toml`` drop-ins into one tree, remembering which file
set which key so that every error can name the file a technician has to edit."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config.issues import printable
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


# No real config comes near these; beyond them a file is a mistake or an attack, and everything
# after the parser (merging, messages, validators) may assume shallow, bounded documents.
MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32


def _files(main: Path, issues: list[ConfigIssue]) -> list[Path]:
    """The main file and the drop-ins in name order; an unusable conf.d is reported."""
    ddir = dropin_dir(main)
    try:
        if not ddir.exists():
            return [main]
        if not ddir.is_dir():
            reason = "not a directory (drop-ins go in conf.d/*.toml)"
            issues.append(ConfigIssue(printable(str(ddir)), "", reason))
            return [main]
        # A .toml name that is not a regular file (a directory, a dangling link) is reported
        # when it is read: a drop-in that silently does nothing is worse than an error.
        return [main, *sorted(p for p in ddir.iterdir() if p.suffix == ".toml")]
    except OSError as exc:
        reason = f"cannot list drop-ins: {_reason(exc)}"
        issues.append(ConfigIssue(printable(str(ddir)), "", reason))
        return [main]


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _parse(path: Path) -> tuple[dict[str, Any] | None, ConfigIssue | None]:
    """One file's document, or the issue that names why it cannot be used."""

    def refuse(reason: str, key: str = "") -> tuple[None, ConfigIssue]:
        return None, ConfigIssue(printable(str(path)), printable(key), reason)

    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return refuse("file not found")
    except PermissionError:
        return refuse("permission denied")
    except IsADirectoryError:
        return refuse("is a directory, not a TOML file")
    except OSError as exc:
        return refuse(f"cannot read: {exc.strerror or exc}")
    except ValueError:  # os.open refuses a name with a NUL byte before any system call
        return refuse("cannot read: the file name contains a NUL byte")
    if len(data) > MAX_BYTES:
        return refuse(f"larger than {MAX_BYTES // (1024 * 1024)} MiB; not a config file")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return refuse(f"not UTF-8 text: {exc.reason} (at byte {exc.start})")
    except tomllib.TOMLDecodeError as exc:
        return refuse(f"invalid TOML: {exc}")
    except ValueError as exc:  # an integer longer than sys.get_int_max_str_digits()
        return refuse(f"invalid TOML: {exc}")
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        return refuse(f"nested too deeply (more than {MAX_DEPTH} levels of arrays or tables)")
    deep = _too_deep(doc)
    if deep is not None:
        return refuse(f"nested more than {MAX_DEPTH} levels deep", deep)
    return doc, None


def _too_deep(doc: dict[str, Any]) -> str | None:
    """The path of the first value nested deeper than MAX_DEPTH, or None (no recursion here)."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return path
        if isinstance(value, dict):
            stack += [(v, f"{path}.{k}" if path else k, depth + 1) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    return None


def read_config(main: Path) -> RawConfig:
    """Parse the main file and every drop-in (name order); collect every unusable file."""
    raw = RawConfig(main=main)
    issues: list[ConfigIssue] = []
    for path in _files(main, issues):
        doc, issue = _parse(path)
        if issue is not None:
            issues.append(issue)
        elif doc is not None:
            raw.files.append(path)
            raw.merge(doc, str(path))
    if issues:
        raise ConfigError(issues)
    return raw
