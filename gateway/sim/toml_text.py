"""TOML text from nested dicts, for the configs the demo, the benches and the tests write.

The standard library reads TOML (``tomllib``) but does not write it, and hand-built f-strings got
quoting wrong the moment a path held a quote or a backslash. Here a config is a plain dict, written
so that ``tomllib.loads(dumps(d)) == d``:

- a ``Mapping`` is a table (``[a.b]``); a non-empty list or tuple whose items are all mappings is
  an array of tables (``[[a.b]]``); other lists are inline arrays, mappings inside them inline
  tables;
- ``str`` is a basic string with TOML's escapes; a ``PurePath`` is written as its string;
- ``bool``, ``int`` (64-bit, as TOML requires) and ``float`` (``inf``, ``-inf`` and ``nan``
  included) are written as TOML's own literals.

A table's own keys come before its sub-tables, so the order of a dict is kept within those two
groups. A table whose only content is sub-tables gets no header of its own: the sub-tables' dotted
headers define it. Anything else (``None``, dates, numpy scalars other than ``float64``) is a
``TypeError``, a value TOML cannot hold (an integer beyond 64 bits, a lone surrogate) a
``ValueError``, as with :func:`json.dumps`: these are mistakes in the calling code, not in a
device or a config.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePath
from types import MappingProxyType
from typing import Any

__all__ = ["dumps"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TO_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SHORT_ESCAPES = MappingProxyType(
    {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
)
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def dumps(data: Mapping[str, Any]) -> str:
    """The TOML document of ``data``: top-level keys first, then one header per table."""
    lines: list[str] = []
    for line in _table((), data, header=None):
        # A blank line before each header, for the technician who opens the file.
        if line.startswith("[") and lines:
            lines.append("")
        lines.append(line)
    return "\n".join(lines) + "\n" if lines else ""


def _table(path: tuple[str, ...], table: Mapping[str, Any], header: str | None) -> Iterator[str]:
    if header is not None:
        yield header
    for key, value in table.items():
        if _is_value(value):
            yield f"{_key(key)} = {_inline(value)}"
    for key, value in table.items():
        sub = (*path, key)
        if _is_table(value):
            # Only an empty table or one with keys of its own needs its header: the dotted
            # headers of its sub-tables define it otherwise.
            own = not value or any(_is_value(v) for v in value.values())
            yield from _table(sub, value, f"[{_dotted(sub)}]" if own else None)
        elif _is_table_array(value):
            for item in value:
                yield from _table(sub, item, f"[[{_dotted(sub)}]]")


def _is_value(value: Any) -> bool:
    """Written as ``key = value`` in its table, not under a header of its own."""
    return not _is_table(value) and not _is_table_array(value)


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(isinstance(item, Mapping) for item in value)
    )


def _dotted(path: Sequence[str]) -> str:
    return ".".join(_key(k) for k in path)


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"TOML keys are strings, not {type(key).__name__}: {key!r}")
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _inline(value: Any) -> str:
    # bool first: it is an int to Python, not to TOML.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ValueError(f"TOML integers are 64-bit signed; {value} is out of range")
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        # repr is the shortest text that reads back to the same float ("0.1", "1e-09"), and its
        # forms are all TOML floats. float() first: numpy 2's float64 (a float subclass) has a
        # repr of its own, "np.float64(0.1)".
        return repr(float(value))
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, PurePath):
        return _string(str(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}: {value!r}")


def _string(text: str) -> str:
    if _SURROGATE.search(text):
        raise ValueError(f"a lone surrogate cannot be written as UTF-8 TOML: {text!r}")
    return '"' + _TO_ESCAPE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"
