"""Typed validation rules on top of :func:`~gateway.config.issues.take`: one message per rule.

Every rule fetches ``table[key]`` (a missing required key or a wrong type is reported the way
``take`` reports it), checks it, reports at most one problem under the key's path, and returns the
value; on a problem it returns the default (None when the key is :data:`REQUIRED`). A default is
therefore written once, in the call, and a legal 0 comes back as 0: never follow a rule with
``value or default``. A default is trusted as written and not checked again.

Numbers are refused when they are NaN or infinite (TOML has both), with the message of
:func:`finite`, before the rule's own check. The message of each rule, for a key that is wrong:

===============  ====================================================
finite           ``must be a finite number, got nan``
ranged           ``must be between 1 and 3600 seconds, got 0.5``
positive         ``must be > 0 s, got -1``
non_negative     ``must be >= 0, got -2``
integer_ranged   ``must be in 0..247, got 300``
one_of           ``must be "tcp" or "rtu", got "udp"``
choice           ``unknown order 'DCAB' (one of: ABCD, CDAB, BADC, DCBA)``
absolute_path    ``must be an absolute path, got 'run'``
resolved_path    ``must not be empty``
existing_path    ``no such file: /etc/ca.pem`` (or ``no such directory: ...``)
subtable         (take's ``expected a table, got ...``)
===============  ====================================================

Strings that reach log lines, the resolver or a system call (hosts, device paths, user names) have
their rules in :mod:`gateway.config.text_rules`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar, overload

from gateway.config.issues import REQUIRED, IssueSink, Required, join, take

__all__ = [
    "REQUIRED",
    "Required",
    "absolute_path",
    "choice",
    "existing_path",
    "finite",
    "integer_ranged",
    "non_negative",
    "one_of",
    "positive",
    "ranged",
    "resolved_path",
    "safe_name",
    "show",
    "shown_key",
    "subtable",
]

_T = TypeVar("_T")
_O = TypeVar("_O", str, int)

# Given the value that passed ``take``: None when it is fine, else the reason.
_Check = Callable[[Any], str | None]


def show(value: object) -> str:
    """A number as a technician wrote it: ``5`` for 5.0, ``0.005``, ``1e-08``, ``nan``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""


def _rule(
    sink: IssueSink,
    path: str,
    table: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    default: Any,
    check: _Check,
) -> Any:
    """``take``, then ``check``; one report at most, the default (or None) on a problem."""
    if key not in table:
        return take(sink, path, table, key, kind, default)
    fallback = None if default is REQUIRED else default
    before = len(sink.issues)
    value = take(sink, path, table, key, kind, default)
    if len(sink.issues) > before:
        return fallback
    reason = check(value)
    if reason is not None:
        sink.error(join(path, key), reason)
        return fallback
    return value


def _finite_then(check: _Check) -> _Check:
    def both(value: float) -> str | None:
        if not math.isfinite(value):
            return f"must be a finite number, got {show(value)}"
        return check(value)

    return both


@overload
def finite(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: float
) -> float: ...
@overload
def finite(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: float | Required | None
) -> float | None: ...
def finite(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: float | Required | None
) -> float | None:
    """Any finite number."""
    value: float | None = _rule(
        sink, path, table, key, float, default, _finite_then(lambda _v: None)
    )
    return value


@overload
def ranged(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: float,
    lo: float, hi: float, *, unit: str = "",
) -> float: ...  # fmt: skip
@overload
def ranged(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: float | Required | None, lo: float, hi: float, *, unit: str = "",
) -> float | None: ...  # fmt: skip
def ranged(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: float | Required | None, lo: float, hi: float, *, unit: str = "",
) -> float | None:  # fmt: skip
    """A number in ``lo..hi``, both included."""

    def check(v: float) -> str | None:
        if lo <= v <= hi:
            return None
        return f"must be between {show(lo)} and {show(hi)}{_unit(unit)}, got {show(v)}"

    value: float | None = _rule(sink, path, table, key, float, default, _finite_then(check))
    return value


@overload
def positive(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: float,
    *, unit: str = "",
) -> float: ...  # fmt: skip
@overload
def positive(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: float | Required | None, *, unit: str = "",
) -> float | None: ...  # fmt: skip
def positive(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: float | Required | None, *, unit: str = "",
) -> float | None:  # fmt: skip
    """A finite number above 0."""

    def check(v: float) -> str | None:
        return None if v > 0 else f"must be > 0{_unit(unit)}, got {show(v)}"

    value: float | None = _rule(sink, path, table, key, float, default, _finite_then(check))
    return value


@overload
def non_negative(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: float,
    *, unit: str = "",
) -> float: ...  # fmt: skip
@overload
def non_negative(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: float | Required | None, *, unit: str = "",
) -> float | None: ...  # fmt: skip
def non_negative(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: float | Required | None, *, unit: str = "",
) -> float | None:  # fmt: skip
    """A finite number, 0 or above."""

    def check(v: float) -> str | None:
        return None if v >= 0 else f"must be >= 0{_unit(unit)}, got {show(v)}"

    value: float | None = _rule(sink, path, table, key, float, default, _finite_then(check))
    return value


@overload
def integer_ranged(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: int,
    lo: int, hi: int, *, unit: str = "",
) -> int: ...  # fmt: skip
@overload
def integer_ranged(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: int | Required | None, lo: int, hi: int, *, unit: str = "",
) -> int | None: ...  # fmt: skip
def integer_ranged(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: int | Required | None, lo: int, hi: int, *, unit: str = "",
) -> int | None:  # fmt: skip
    """An integer in ``lo..hi``, both included."""

    def check(v: int) -> str | None:
        return None if lo <= v <= hi else f"must be in {lo}..{hi}{_unit(unit)}, got {v}"

    value: int | None = _rule(sink, path, table, key, int, default, check)
    return value


def _toml(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def _alternatives(options: Collection[object]) -> str:
    shown = [_toml(o) for o in options]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


@overload
def one_of(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: _O,
    options: Collection[_O],
) -> _O: ...  # fmt: skip
@overload
def one_of(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: Required | None,
    options: Collection[_O],
) -> _O | None: ...  # fmt: skip
def one_of(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: _O | Required | None, options: Collection[_O],
) -> _O | None:  # fmt: skip
    """One of a few settings (strings or integers), written as TOML writes them."""
    kind = str if all(isinstance(o, str) for o in options) else int

    def check(v: _O) -> str | None:
        return None if v in options else f"must be {_alternatives(options)}, got {_toml(v)}"

    value: _O | None = _rule(sink, path, table, key, kind, default, check)
    return value


@overload
def choice(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: Required | None,
    options: Mapping[str, _T],
) -> _T | None: ...  # fmt: skip
@overload
def choice(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: _T,
    options: Mapping[str, _T],
) -> _T: ...  # fmt: skip
def choice(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: _T | Required | None, options: Mapping[str, _T],
) -> _T | None:  # fmt: skip
    """A name looked up in a table of named things (a data type, a byte order): the thing."""

    def check(v: str) -> str | None:
        if v in options:
            return None
        return f"unknown {key} {v!r} (one of: {', '.join(options)})"

    if key not in table:
        found: _T | None = take(sink, path, table, key, str, default)
        return found
    name: str | None = _rule(sink, path, table, key, str, REQUIRED, check)
    if name is None:
        return None if default is REQUIRED else default
    return options[name]


def absolute_path(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: str
) -> Path:
    """An absolute filesystem path."""

    def check(v: str) -> str | None:
        return None if Path(v).is_absolute() else f"must be an absolute path, got {v!r}"

    value: str = _rule(sink, path, table, key, str, default, check)
    return Path(value)


def resolved_path(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: str, base: Path
) -> Path:
    """A file or directory name; a relative one is taken under ``base`` (the state dir)."""

    def check(v: str) -> str | None:
        return None if v.strip() else "must not be empty"

    value: str = _rule(sink, path, table, key, str, default, check)
    p = Path(value)
    return p if p.is_absolute() else base / p


def existing_path(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, *, directory: bool = False
) -> Path | None:
    """An optional file (or directory) that must exist now; None when not written (or wrong)."""
    what = "directory" if directory else "file"

    def check(v: str) -> str | None:
        there = Path(v).is_dir() if directory else Path(v).is_file()
        return None if there else f"no such {what}: {v}"

    value: str | None = _rule(sink, path, table, key, str, None, check)
    return Path(value) if value is not None else None


def subtable(sink: IssueSink, path: str, table: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """An optional sub-table; {} when it is not written (or not a table, which is reported)."""
    value = take(sink, path, table, key, dict, {})
    return value if isinstance(value, dict) else {}


# A device or point name becomes an MQTT topic level, a word in a log line and a key in the status
# files: no control characters (a newline forges a log line), no MQTT wildcards (+ #) or level
# separator (/), no spaces, bounded.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
SAFE_NAME_RULE = "1-64 characters of A-Z a-z 0-9 _ . - (not starting with . or -)"


def shown_key(name: str) -> str:
    """A name as a key path segment: as written when it is safe, else as a TOML quoted key with
    every control and non-ASCII character escaped, so an error line can never be forged."""
    if _SAFE_NAME.fullmatch(name):
        return name
    return json.dumps(name).replace("\x7f", "\\u007f")  # JSON leaves DEL raw; TOML may not


def safe_name(sink: IssueSink, path: str, name: str, what: str) -> bool:
    """Report (at ``path``) a device or point name outside :data:`SAFE_NAME_RULE`."""
    if _SAFE_NAME.fullmatch(name):
        return True
    sink.error(
        path,
        f"{what} name {shown_key(name)} must be {SAFE_NAME_RULE}: names go into MQTT "
        "topics, log lines and status",
    )
    return False
