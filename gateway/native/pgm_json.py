"""power-grid-model's JSON serialisation format, read and written without power-grid-model.

A dataset file is ``{"version", "type", "is_batch", "attributes", "data"}``. ``data`` maps a
component name to a list of rows; a row is either an object or, when ``attributes`` lists the
component's column names, an array in that order. A batch dataset has a list of such ``data``
objects, one per scenario. Missing values may be absent, ``null`` or ``NaN``; all become absent
here, so callers apply their own defaults. Only the shape is checked here; meaning is checked by
the feeder model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.issues import IssueSink

Row = dict[str, Any]
Components = dict[str, list[Row]]

FORMAT_VERSION = "1.0"


@dataclass(frozen=True)
class PgmDataset:
    """One parsed dataset: its type, and one component table per scenario (one if not batch)."""

    dataset_type: str
    is_batch: bool
    scenarios: list[Components]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _clean(value: Any) -> Any:
    # Asymmetric attributes are arrays of three; a NaN inside stays NaN for the model to judge.
    if isinstance(value, list):
        return [math.nan if v is None else v for v in value]
    return value


def _rows(
    sink: IssueSink, component: str, rows: Any, columns: list[str] | None, where: str
) -> list[Row]:
    if not isinstance(rows, list):
        sink.error(f"{where}{component}", "expected an array of rows")
        return []
    out: list[Row] = []
    for i, raw in enumerate(rows):
        if isinstance(raw, Mapping):
            row = {k: _clean(v) for k, v in raw.items() if not _missing(v)}
        elif isinstance(raw, list) and columns is not None and len(raw) == len(columns):
            row = {k: _clean(v) for k, v in zip(columns, raw, strict=True) if not _missing(v)}
        else:
            sink.error(
                f"{where}{component}[{i}]",
                "expected an object, or an array matching the component's attributes",
            )
            continue
        out.append(row)
    return out


def _components(
    sink: IssueSink, data: Any, attributes: Mapping[str, list[str]], where: str
) -> Components:
    if not isinstance(data, Mapping):
        sink.error(where.rstrip(".") or "data", "expected an object of component tables")
        return {}
    return {
        name: _rows(sink, name, rows, attributes.get(name), where) for name, rows in data.items()
    }


def parse(doc: Any, sink: IssueSink) -> PgmDataset:
    """Parse a decoded JSON document; report shape problems into ``sink``."""
    if not isinstance(doc, Mapping):
        sink.error("", "expected a power-grid-model JSON dataset object")
        return PgmDataset("input", False, [{}])
    for key in ("version", "type", "is_batch", "data"):
        if key not in doc:
            sink.error(key, "required key of a power-grid-model dataset is missing")
    dataset_type = str(doc.get("type", "input"))
    is_batch = bool(doc.get("is_batch", False))
    attributes_raw = doc.get("attributes", {})
    attributes: dict[str, list[str]] = (
        {k: list(v) for k, v in attributes_raw.items() if isinstance(v, list)}
        if isinstance(attributes_raw, Mapping)
        else {}
    )
    data = doc.get("data", {})
    if is_batch:
        if not isinstance(data, list):
            sink.error("data", "a batch dataset's data must be an array of scenarios")
            return PgmDataset(dataset_type, True, [])
        scenarios = [_components(sink, d, attributes, f"data[{i}].") for i, d in enumerate(data)]
        return PgmDataset(dataset_type, True, scenarios)
    return PgmDataset(dataset_type, False, [_components(sink, data, attributes, "")])


def load(path: Path, sink: IssueSink) -> PgmDataset:
    """Read and parse a dataset file; an unreadable or non-JSON file is one issue, not a crash."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        sink.error("", f"cannot read a JSON dataset: {exc}")
        return PgmDataset("input", False, [{}])
    return parse(doc, sink)


def _jsonable(value: Any) -> Any:
    # JSON has no NaN: power-grid-model's own serialiser writes missing values as null too.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def dump(dataset_type: str, scenarios: list[Components], is_batch: bool) -> dict[str, Any]:
    """Build a dataset document; non-finite floats become ``null``."""
    tables = [
        {
            name: [{k: _jsonable(v) for k, v in row.items()} for row in rows]
            for name, rows in s.items()
        }
        for s in scenarios
    ]
    return {
        "version": FORMAT_VERSION,
        "type": dataset_type,
        "is_batch": is_batch,
        "attributes": {},
        "data": tables if is_batch else tables[0],
    }
