"""Collecting config problems while validating, with the file each key came from.

Validation never stops at the first problem: every validator reports into an
:class:`IssueSink` and the loader raises one :class:`ConfigError` with all of them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from gateway.core.errors import ConfigError, ConfigIssue

# Maps a dotted key path to the file that last set it (drop-ins override the main file).
OriginLookup = Callable[[str], str]


class IssueSink:
    """Accumulates :class:`ConfigIssue` objects; knows which file set which key."""

    def __init__(self, origin: OriginLookup | str) -> None:
        self._origin: OriginLookup = (lambda _p: origin) if isinstance(origin, str) else origin
        self.issues: list[ConfigIssue] = []

    def error(self, path: str, reason: str) -> None:
        # Keys and values are the file's text: a newline in a key must not forge a second line.
        self.issues.append(
            ConfigIssue(printable(self._origin(path)), printable(path), printable(reason))
        )

    def raise_if_any(self) -> None:
        if self.issues:
            raise ConfigError(self.issues)

    def __bool__(self) -> bool:  # truthy when problems were found
        return bool(self.issues)


# C0, DEL, C1, line/paragraph separators, and the invisible format characters (zero-width,
# bidirectional overrides) that make a line read differently from what it holds.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def printable(text: str) -> str:
    """Control characters escaped (``\\n``, ``\\x00``): one line, no terminal codes."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def join(path: str, key: str | int) -> str:
    """Extend a dotted key path; list indices render as ``[i]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "a table",
    list: "an array",
}


def type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(_TYPE_NAMES.get(x, x.__name__) for x in t)
    return _TYPE_NAMES.get(t, t.__name__)


def check_keys(sink: IssueSink, path: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    """Report every key the schema does not know (typos must not be silently ignored)."""
    for key in table:
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            sink.error(join(path, key), f"unknown key (allowed here: {hint})")


class Required(enum.Enum):
    """The type of :data:`REQUIRED`: a default that says "no default, the key must be written"."""

    REQUIRED = "required"


REQUIRED: Final = Required.REQUIRED
_MAX_FLOAT_INT: Final = 2**1023  # float(2**1024) overflows
_MISSING: Final = REQUIRED


def take(
    sink: IssueSink,
    path: str,
    table: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    default: Any = _MISSING,
) -> Any:
    """Fetch ``table[key]`` checked against ``kind``; report and return ``default`` on a problem.

    ``int`` is accepted where a float is asked for (TOML writes ``5`` for five seconds);
    ``bool`` is never accepted as a number.
    """
    where = join(path, key)
    if key not in table:
        if default is _MISSING:
            sink.error(where, "required key is missing")
            return None
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        sink.error(where, f"expected {type_name(kind)}, got {value!r}")
        return None if default is _MISSING else default
    if float in kinds and isinstance(value, int):
        if abs(value) > _MAX_FLOAT_INT:  # TOML integers are unbounded; a float is not
            digits = len(str(abs(value)))
            sink.error(where, f"expected {type_name(kind)}, got an integer of {digits} digits")
            return None if default is _MISSING else default
        return float(value)
    if not isinstance(value, kinds):
        sink.error(where, f"expected {type_name(kind)}, got {type(value).__name__} {value!r}")
        return None if default is _MISSING else default
    return value
