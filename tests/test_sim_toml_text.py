"""gateway.sim.toml_text.dumps, checked against the standard library's own reader: whatever it
writes, ``tomllib.loads`` reads back to the same dict, types and float bits included."""

from __future__ import annotations

import math
import tomllib
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sim.toml_text import dumps


def same(a: Any, b: Any) -> bool:
    """Equal with the types TOML keeps apart: ``1 == 1.0 == True`` to Python, not to TOML;
    ``0.0 == -0.0`` and ``nan != nan`` to Python, bit for bit here. Key order is not compared:
    dumps writes a table's own keys before its sub-tables."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    return bool(a == b)


def round_trip(data: dict[str, Any]) -> dict[str, Any]:
    return tomllib.loads(dumps(data))


AWKWARD: dict[str, dict[str, Any]] = {
    "quotes and backslashes": {
        "s": 'say "hi"',
        "win": "C:\\dev\\ttyUSB0\\",
        "both": '\\"',
        "single": "it's",
        "triple": '"""',
    },
    "control characters": {"s": "a\tb\nc\rd\be\ff\x00g\x1fh\x7fi"},
    "unicode": {"s": "Ω µs – 5 °C, 电池, 🔋", "ключ": "значение", "": "empty key"},
    "keys that need quotes": {"a.b": 1, "with space": 2, 'q"uote': 3, "rs485-1": 4, "_x": 5},
    "nested tables": {"gateway": {"site": "s"}, "grid": {"limits": {"l1": {"low": 207.0}}}},
    "table with values and sub-tables": {"bms": {"window": 1.0, "cells": {"capacity_ah": 94.0}}},
    "arrays of tables": {
        "bms": {"lines": [{"name": "l0", "boards": 4}, {"name": "l1", "boards": 4}]},
    },
    "array of tables with their own sub-tables and arrays": {
        "a": [{"x": 1, "t": {"y": 2}, "u": [{"z": 3}, {"z": 4}]}, {"x": 5}],
    },
    "empty tables": {"broker": {}, "a": {"b": {}}, "c": [{}, {}], "d": {"e": {}, "f": 1}},
    "floats": {
        "tenth": 0.1,
        "tiny": 1e-9,
        "huge": 1e300,
        "subnormal": 5e-324,
        "whole": 94.0,
        "neg_zero": -0.0,
        "inf": math.inf,
        "ninf": -math.inf,
        "third": 1 / 3,
    },
    "ints and bools": {"zero": 0, "neg": -7, "min": -(2**63), "max": 2**63 - 1, "t": True},
    "inline arrays": {
        "empty": [],
        "nums": [1, 2.5, -3],
        "strs": ['a"', "b\\"],
        "nested": [[1, 2], ["x"], []],
        "mixed_tables": [1, {"k": "v"}],
        "tuple": [True, False],
    },
    "inline table inside an array": {"points": [[{"name": "p", "unit": "V"}]]},
    "top-level values beside tables": {"title": "t", "n": 1, "t": {"k": 1}},
}


@pytest.mark.parametrize("data", AWKWARD.values(), ids=list(AWKWARD))
def test_awkward_cases_read_back_the_same(data: dict[str, Any]) -> None:
    assert same(round_trip(data), data), dumps(data)


def test_nan_reads_back_as_nan() -> None:
    back = round_trip({"x": math.nan, "l": [math.nan]})
    assert math.isnan(back["x"]) and math.isnan(back["l"][0])


def test_tuples_and_paths_read_back_as_lists_and_strings() -> None:
    data = {"t": (1, 2), "p": PurePosixPath("/run/gridgate/a b"), "aot": ({"x": 1},)}
    assert same(round_trip(data), {"t": [1, 2], "p": "/run/gridgate/a b", "aot": [{"x": 1}]})


def test_layout_a_technician_can_read() -> None:
    # hil_tests/test_watchdog.py edits the bench config by its "[gateway]\n" line.
    text = dumps(
        {
            "gateway": {"site": "bench", "status_interval": 0.5},
            "grid": {"limits": {"v": {"low": 207.0}}},
            "bms": {"lines": [{"name": "l0"}]},
        }
    )
    assert text == (
        '[gateway]\nsite = "bench"\nstatus_interval = 0.5\n'
        "\n[grid.limits.v]\nlow = 207.0\n"
        '\n[[bms.lines]]\nname = "l0"\n'
    )
    assert dumps({}) == ""


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"x": None}, TypeError),
        ({"x": b"bytes"}, TypeError),
        ({"x": {1, 2}}, TypeError),
        ({1: "int key"}, TypeError),
        ({"x": 2**63}, ValueError),
        ({"x": -(2**63) - 1}, ValueError),
        ({"x": "lone \ud800 surrogate"}, ValueError),
    ],
)
def test_what_toml_cannot_hold_is_refused(data: dict[Any, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        dumps(data)


# Any document TOML can hold, as tomllib gives it back: ints in 64 bits, floats but nan (never
# equal to itself; tested above), strings without surrogates, arrays, tables, arrays of tables.
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_scalar = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | _text
)
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, _value, max_size=6))
def test_any_document_reads_back_the_same(data: dict[str, Any]) -> None:
    assert same(round_trip(data), data), dumps(data)


def test_numpy_float64_is_written_as_a_plain_float() -> None:
    """numpy 2's float64 is a float whose repr is "np.float64(0.1)": not TOML."""
    import numpy as np

    text = dumps({"a": np.float64(0.1), "b": [np.float64(-2.5e-9)]})
    assert tomllib.loads(text) == {"a": 0.1, "b": [-2.5e-9]}
