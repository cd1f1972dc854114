"""Register maps from TOML: validation of every field, device profiles, overrides.

A map is a table with optional ``[profile]`` metadata (device profiles only), optional
``[defaults]`` (table, type, order) and ``[[points]]``. Validation reports every problem into an
:class:`~gateway.config.issues.IssueSink` with its key path and carries on; a point with a problem
is left out of the result, so callers must check the sink before using the points.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from drivers.modbus.types import (
    MAX_ADDRESS,
    MAX_READ_REGISTERS,
    TYPES_BY_LABEL,
    ByteOrder,
    DataType,
    RegisterPoint,
    Table,
)
from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.rules import REQUIRED, choice, integer_ranged, ranged, safe_name
from gateway.config.text_rules import plain_text

_MAP_KEYS: Final = frozenset({"profile", "defaults", "points"})
_PROFILE_KEYS: Final = frozenset({"name", "manufacturer", "model", "source", "notes"})
_DEFAULT_KEYS: Final = frozenset({"table", "type", "order"})
_POINT_KEYS: Final = frozenset(
    {
        "name",
        "address",
        "table",
        "type",
        "order",
        "bit",
        "length",
        "scale",
        "offset",
        "unit",
        "low",
        "high",
        "deadband",
        "valid_min",
        "valid_max",
    }
)
# Keys that mean nothing for a string point: its value is text, not a number.
_NUMERIC_ONLY: Final = ("scale", "offset", "low", "high", "deadband", "valid_min", "valid_max")
# Bounds of a point's figures in its own unit: an energy counter reaches 1e12 Wh (a TWh) on a
# big feeder, nothing a meter reports comes near 1e15; a scale beyond 1e12 is a typing error.
MAX_VALUE: Final = 1e15
MAX_SCALE: Final = 1e12

_PROFILE_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]*")
_PROFILE_PACKAGE: Final = "gateway.profiles"

_TABLES: Final = {t.value: t for t in Table}
_ORDERS: Final = {o.name: o for o in ByteOrder}


@dataclass(frozen=True)
class _Defaults:
    table: Table = Table.HOLDING
    type: DataType = DataType.U16
    order: ByteOrder = ByteOrder.ABCD


def parse_register_map(
    doc: Mapping[str, Any],
    sink: IssueSink,
    path: str,
    *,
    extra_keys: Collection[str] = (),
) -> list[RegisterPoint]:
    """Validate a register map and return its points in the order written.

    ``path`` is the key path of ``doc`` in its file ("" for a whole profile file);
    ``extra_keys`` are keys of ``doc`` the caller validates itself (host, port, ...). A
    ``profile = "name"`` reference is resolved by :func:`load_register_map`, not here.
    """
    check_keys(sink, path, doc, set(_MAP_KEYS | set(extra_keys)))
    if "profile" in doc:
        meta = take(sink, path, doc, "profile", dict)
        if meta is not None:
            _check_profile_meta(meta, sink, join(path, "profile"))
    entries = _parse_points(doc, sink, path)
    _check_layout(entries, sink)
    return [point for point, _ in entries]


def load_profile(
    name: str, sink: IssueSink, path: str, search_dirs: Sequence[Path]
) -> list[RegisterPoint]:
    """Points of the device profile ``name``: ``<name>.toml`` in ``search_dirs`` (first match
    wins), else the profiles packaged with gridgate.

    ``path`` is where the config names the profile; problems inside the profile file are
    reported against that file, problems finding it against ``path``.
    """
    if not _PROFILE_NAME_RE.fullmatch(name):
        sink.error(path, f"profile name {name!r} must be lower-case letters, digits, _ or -")
        return []
    text, origin = _find_profile(name, search_dirs)
    if text is None:
        known = ", ".join(sorted(known_profiles(search_dirs))) or "none"
        sink.error(path, f"unknown profile {name!r} (known: {known})")
        return []
    inner = IssueSink(origin)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        inner.error("", f"not valid TOML: {exc}")
        doc = {}
    if doc and "profile" not in doc:
        inner.error("profile", "a profile file needs a [profile] table (name, source)")
    points = parse_register_map(doc, inner, "")
    sink.issues.extend(inner.issues)
    return points


def known_profiles(search_dirs: Sequence[Path]) -> set[str]:
    """Names of every profile :func:`load_profile` can find."""
    names = {p.stem for d in search_dirs if d.is_dir() for p in d.glob("*.toml")}
    packaged = importlib.resources.files(_PROFILE_PACKAGE)
    names.update(
        e.name.removesuffix(".toml") for e in packaged.iterdir() if e.name.endswith(".toml")
    )
    return names


def load_register_map(
    doc: Mapping[str, Any],
    sink: IssueSink,
    path: str,
    search_dirs: Sequence[Path],
    *,
    extra_keys: Collection[str] = (),
) -> list[RegisterPoint]:
    """A device's map as written in a config: an optional ``profile = "name"`` plus own points.

    A point named like a profile point replaces it entirely (address, type and all); other
    points are added after the profile's. The config's ``[defaults]`` apply to its own points
    only (the profile's have theirs). Overlaps between the two are reported at the config's
    point.
    """
    if not isinstance(doc.get("profile"), str):
        return parse_register_map(doc, sink, path, extra_keys=extra_keys)
    check_keys(sink, path, doc, set(_MAP_KEYS | set(extra_keys)))
    base = load_profile(doc["profile"], sink, join(path, "profile"), search_dirs)
    own = _parse_points(doc, sink, path)
    own_names = {point.name for point, _ in own}
    merged: list[tuple[RegisterPoint, str | None]] = [
        (point, None) for point in base if point.name not in own_names
    ]
    merged.extend(own)
    _check_layout(merged, sink)
    return [point for point, _ in merged]


def _find_profile(name: str, search_dirs: Sequence[Path]) -> tuple[str | None, str]:
    filename = f"{name}.toml"
    for directory in search_dirs:
        candidate = directory / filename
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8"), str(candidate)
    packaged = importlib.resources.files(_PROFILE_PACKAGE) / filename
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8"), f"<{_PROFILE_PACKAGE}>/{filename}"
    return None, filename


def _check_profile_meta(meta: Mapping[str, Any], sink: IssueSink, path: str) -> None:
    check_keys(sink, path, meta, set(_PROFILE_KEYS))
    take(sink, path, meta, "name", str)
    take(sink, path, meta, "source", str)
    for key in ("manufacturer", "model", "notes"):
        take(sink, path, meta, key, str, "")


def _parse_defaults(doc: Mapping[str, Any], sink: IssueSink, path: str) -> _Defaults:
    raw = take(sink, path, doc, "defaults", dict, {})
    if raw is None:
        return _Defaults()
    where = join(path, "defaults")
    check_keys(sink, where, raw, set(_DEFAULT_KEYS))
    base = _Defaults()
    table = choice(sink, where, raw, "table", base.table, _TABLES)
    dtype = choice(sink, where, raw, "type", base.type, TYPES_BY_LABEL)
    if dtype in (DataType.BOOL, DataType.STRING, DataType.BIT):
        sink.error(join(where, "type"), f"{dtype.label} cannot be a default type")
        dtype = base.type
    order = choice(sink, where, raw, "order", base.order, _ORDERS)
    return _Defaults(table, dtype, order)


def _parse_points(
    doc: Mapping[str, Any], sink: IssueSink, path: str
) -> list[tuple[RegisterPoint, str | None]]:
    defaults = _parse_defaults(doc, sink, path)
    raw_points = take(sink, path, doc, "points", list, [])
    if raw_points is None:
        return []
    entries: list[tuple[RegisterPoint, str | None]] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(raw_points):
        where = join(join(path, "points"), i)
        if not isinstance(raw, dict):
            sink.error(where, f"expected a table, got {type(raw).__name__}")
            continue
        point = _parse_point(raw, sink, where, defaults)
        name = raw.get("name")
        if isinstance(name, str):
            if name in seen:
                sink.error(
                    join(where, "name"), f"duplicate point name {name!r} (also {seen[name]})"
                )
                continue
            seen[name] = where
        if point is not None:
            entries.append((point, where))
    return entries


def _parse_point(
    raw: Mapping[str, Any], sink: IssueSink, where: str, defaults: _Defaults
) -> RegisterPoint | None:
    before = len(sink.issues)
    check_keys(sink, where, raw, set(_POINT_KEYS))
    name = take(sink, where, raw, "name", str)
    if isinstance(name, str):
        safe_name(sink, join(where, "name"), name, "point")
    address = integer_ranged(sink, where, raw, "address", REQUIRED, 0, MAX_ADDRESS)
    table = choice(sink, where, raw, "table", defaults.table, _TABLES)
    if table.is_bit:
        dtype, order, bit, length = _bit_table_shape(raw, sink, where, table)
    else:
        dtype, order, bit, length = _register_shape(raw, sink, where, defaults)
    scale = ranged(sink, where, raw, "scale", 1.0, -MAX_SCALE, MAX_SCALE)
    if scale == 0.0:
        sink.error(join(where, "scale"), "must not be 0 (every value would read 0)")
    offset = ranged(sink, where, raw, "offset", 0.0, -MAX_VALUE, MAX_VALUE)
    # Empty for a dimensionless point (a power factor); otherwise it reaches status and logs.
    unit = "" if raw.get("unit") == "" else plain_text(sink, where, raw, "unit", "", max_len=16)
    low = ranged(sink, where, raw, "low", None, -MAX_VALUE, MAX_VALUE)
    high = ranged(sink, where, raw, "high", None, -MAX_VALUE, MAX_VALUE)
    if low is not None and high is not None and low > high:
        sink.error(join(where, "low"), f"low {low} is above high {high}")
    deadband = ranged(sink, where, raw, "deadband", 0.0, 0.0, MAX_VALUE)
    valid_min = ranged(sink, where, raw, "valid_min", None, -MAX_VALUE, MAX_VALUE)
    valid_max = ranged(sink, where, raw, "valid_max", None, -MAX_VALUE, MAX_VALUE)
    if valid_min is not None and valid_max is not None and valid_min > valid_max:
        sink.error(
            join(where, "valid_min"), f"valid_min {valid_min} is above valid_max {valid_max}"
        )
    if dtype is DataType.STRING:
        for key in _NUMERIC_ONLY:
            if key in raw:
                sink.error(join(where, key), "not used by a string point")
    if len(sink.issues) > before or name is None or address is None:
        return None
    point = RegisterPoint(
        name=name,
        table=table,
        address=address,
        type=dtype,
        order=order,
        bit=bit,
        length=length,
        scale=scale,
        offset=offset,
        unit=unit,
        low=low,
        high=high,
        deadband=deadband,
        valid_min=valid_min,
        valid_max=valid_max,
    )
    if point.end > MAX_ADDRESS + 1:
        sink.error(join(where, "address"), f"{point.count} addresses from {address} pass 65535")
        return None
    return point


def _bit_table_shape(
    raw: Mapping[str, Any], sink: IssueSink, where: str, table: Table
) -> tuple[DataType, ByteOrder, int, int]:
    """Coils and discrete inputs are single bits: type, order, bit and length do not apply."""
    kind = "a coil" if table is Table.COIL else "a discrete input"
    if raw.get("type") == "bit" or "bit" in raw:
        key = "bit" if "bit" in raw else "type"
        sink.error(join(where, key), f"a bit on {kind}: {kind} is already one bit")
    elif "type" in raw and raw["type"] != "bool":
        sink.error(join(where, "type"), f"{kind} is one bit: leave type out (or write bool)")
    for key in ("order", "length"):
        if key in raw:
            sink.error(join(where, key), f"does not apply to {kind}")
    return DataType.BOOL, ByteOrder.ABCD, 0, 0


def _register_shape(
    raw: Mapping[str, Any], sink: IssueSink, where: str, defaults: _Defaults
) -> tuple[DataType, ByteOrder, int, int]:
    dtype = choice(sink, where, raw, "type", defaults.type, TYPES_BY_LABEL)
    if dtype is DataType.BOOL:
        sink.error(
            join(where, "type"), "bool is for coil/discrete points; use bit for a register bit"
        )
    order = choice(sink, where, raw, "order", defaults.order, _ORDERS)
    if "type" in raw and raw["type"] not in TYPES_BY_LABEL:
        return dtype, order, 0, 0  # already reported; bit/length checks would only echo it
    bit = 0
    if dtype is DataType.BIT:
        taken = take(sink, where, raw, "bit", int)
        if isinstance(taken, int):
            if 0 <= taken <= 15:
                bit = taken
            else:
                sink.error(join(where, "bit"), f"bit {taken} is outside 0..15")
    elif "bit" in raw:
        sink.error(join(where, "bit"), f"only for type bit, not {dtype.label}")
    length = 0
    if dtype is DataType.STRING:
        taken = integer_ranged(
            sink, where, raw, "length", REQUIRED, 1, MAX_READ_REGISTERS, unit="registers"
        )
        length = taken if taken is not None else 0
    elif "length" in raw:
        sink.error(join(where, "length"), f"only for type string, not {dtype.label}")
    return dtype, order, bit, length


def _check_layout(entries: Sequence[tuple[RegisterPoint, str | None]], sink: IssueSink) -> None:
    """Report registers claimed by two points. Bit points may share a register (not a bit).

    An overlap is reported at the later point of the pair that has a path; pairs where neither
    has one (two points of an already-checked profile) are not reported again.
    """
    by_table: dict[Table, list[tuple[RegisterPoint, str | None]]] = {}
    for entry in entries:
        by_table.setdefault(entry[0].table, []).append(entry)
    for group in by_table.values():
        group.sort(key=lambda e: (e[0].address, e[0].end))
        for j, (b, b_path) in enumerate(group):
            for a, a_path in reversed(group[:j]):
                if a.address + MAX_READ_REGISTERS <= b.address:
                    break  # sorted by address and no point is longer: nothing earlier reaches b
                if a.end <= b.address:
                    continue
                if a.type is DataType.BIT and b.type is DataType.BIT and a.bit != b.bit:
                    continue
                where, other, this = (b_path, a, b) if b_path is not None else (a_path, b, a)
                if where is None:
                    continue
                if a.type is DataType.BIT and b.type is DataType.BIT:
                    reason = (
                        f"bit {this.bit} of register {this.address} is also point {other.name!r}"
                    )
                else:
                    reason = (
                        f"addresses {_span(this)} overlap point {other.name!r} ({_span(other)})"
                    )
                sink.error(join(where, "address"), reason)


def _span(point: RegisterPoint) -> str:
    return f"{point.address}..{point.end - 1}"
