"""Typed, validated access to the rows of a power-grid-model input dataset.

Every problem is collected with the component id (``line[id=17].r1``) into an IssueSink, so a
user sees all of them at once instead of the first.
"""

from __future__ import annotations

import math

from gateway.config.issues import IssueSink
from gateway.native.pgm_json import Components, Row


class RowReader:
    """Typed access to one row's attributes, reporting every problem with the component id."""

    def __init__(self, sink: IssueSink, component: str, index: int, row: Row) -> None:
        self.sink = sink
        self.row = row
        rid = row.get("id")
        self.where = f"{component}[id={rid}]" if rid is not None else f"{component}[{index}]"

    def error(self, attr: str, reason: str) -> None:
        self.sink.error(f"{self.where}.{attr}" if attr else self.where, reason)

    def num(self, attr: str, default: float | None = None) -> float:
        value = self.row.get(attr)
        if value is None:
            if default is None:
                self.error(attr, "required attribute is missing")
                return math.nan
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(attr, f"expected a number, got {value!r}")
            return math.nan
        return float(value)

    def integer(self, attr: str, default: int | None = None) -> int:
        value = self.row.get(attr)
        if value is None:
            if default is None:
                self.error(attr, "required attribute is missing")
                return 0
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(attr, f"expected an integer, got {value!r}")
            return 0
        return value

    def triple(self, attr: str) -> list[float]:
        value = self.row.get(attr)
        if not (
            isinstance(value, list)
            and len(value) == 3
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            self.error(attr, f"expected an array of three numbers (one per phase), got {value!r}")
            return [math.nan] * 3
        return [float(v) for v in value]

    def positive(self, attr: str, default: float | None = None) -> float:
        value = self.num(attr, default)
        if not value > 0:
            self.error(attr, f"must be positive, got {value}")
        return value


def check_ids(sink: IssueSink, comps: Components) -> None:
    """Every row needs an integer id, unique across all components (as power-grid-model)."""
    seen: dict[int, str] = {}
    for name, rows in comps.items():
        for i, row in enumerate(rows):
            rid = row.get("id")
            if isinstance(rid, bool) or not isinstance(rid, int):
                sink.error(f"{name}[{i}].id", f"expected an integer id, got {rid!r}")
                continue
            if rid in seen:
                sink.error(f"{name}[id={rid}].id", f"duplicate id (also used by a {seen[rid]})")
            seen[rid] = name


__all__ = ["RowReader", "check_ids"]
