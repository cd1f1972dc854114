"""The typed config rules: one message per rule, one report per key, the default on a problem."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from gateway.config.issues import IssueSink
from gateway.config.rules import (
    REQUIRED,
    absolute_path,
    choice,
    existing_path,
    finite,
    integer_ranged,
    non_negative,
    one_of,
    positive,
    ranged,
    resolved_path,
    show,
    subtable,
)


def _run(rule: Any, value: Any, *args: Any, **kw: Any) -> tuple[Any, list[str]]:
    sink = IssueSink("g.toml")
    table = {} if value is _ABSENT else {"k": value}
    got = rule(sink, "s", table, "k", *args, **kw)
    return got, [f"{i.path}: {i.reason}" for i in sink.issues]


_ABSENT = object()


@pytest.mark.parametrize(
    ("rule", "args", "value", "reason"),
    [
        (finite, (1.0,), math.nan, "must be a finite number, got nan"),
        (finite, (1.0,), -math.inf, "must be a finite number, got -inf"),
        (ranged, (60.0, 1.0, 3600.0), 0.5, "must be between 1 and 3600, got 0.5"),
        (ranged, (60.0, 1.0, 3600.0), math.nan, "must be a finite number, got nan"),
        (positive, (1.0,), 0, "must be > 0, got 0"),
        (positive, (1.0,), math.inf, "must be a finite number, got inf"),
        (non_negative, (1.0,), -2, "must be >= 0, got -2"),
        (integer_ranged, (1, 0, 247), 300, "must be in 0..247, got 300"),
        (one_of, ("tcp", ("tcp", "rtu")), "udp", 'must be "tcp" or "rtu", got "udp"'),
        (one_of, (1, (1, 2)), 3, "must be 1 or 2, got 3"),
        (one_of, ("a", ("a", "b", "c")), "d", 'must be "a", "b" or "c", got "d"'),
        (choice, (1, {"one": 1, "two": 2}), "three", "unknown k 'three' (one of: one, two)"),
        (absolute_path, ("/x",), "rel/dir", "must be an absolute path, got 'rel/dir'"),
    ],
)
def test_one_message_per_rule_and_the_default_back(
    rule: Any, args: tuple[Any, ...], value: Any, reason: str
) -> None:
    got, issues = _run(rule, value, *args)
    assert issues == [f"s.k: {reason}"]
    default = args[0]
    assert got == (Path(default) if rule is absolute_path else default)


def test_units_are_spelled_after_the_bound() -> None:
    _, issues = _run(ranged, 0, 60.0, 1.0, 3600.0, unit="seconds")
    assert issues == ["s.k: must be between 1 and 3600 seconds, got 0"]
    _, issues = _run(positive, -1, 1.0, unit="s")
    assert issues == ["s.k: must be > 0 s, got -1"]
    _, issues = _run(integer_ranged, 0, 3, 1, 1000, unit="cycles")
    assert issues == ["s.k: must be in 1..1000 cycles, got 0"]


@pytest.mark.parametrize(
    ("rule", "args"),
    [
        (ranged, (5.0, 0.0, 10.0)),
        (non_negative, (5.0,)),
        (finite, (5.0,)),
        (integer_ranged, (5, 0, 10)),
    ],
)
def test_a_legal_zero_survives(rule: Any, args: tuple[Any, ...]) -> None:
    got, issues = _run(rule, 0, *args)
    assert issues == [] and got == 0


def test_a_wrong_type_is_reported_once_and_the_default_returned() -> None:
    got, issues = _run(ranged, "5", 60.0, 1.0, 3600.0)
    assert issues == ["s.k: expected a number, got str '5'"] and got == 60.0
    got, issues = _run(integer_ranged, True, 3, 1, 9)
    assert issues == ["s.k: expected an integer, got True"] and got == 3


def test_an_absent_key_gives_the_default_unchecked_or_is_required() -> None:
    assert _run(ranged, _ABSENT, None, 0.0, 1.0) == (None, [])
    assert _run(positive, _ABSENT, 2.5) == (2.5, [])
    assert _run(one_of, _ABSENT, "a", ("a", "b")) == ("a", [])
    assert _run(positive, _ABSENT, REQUIRED) == (None, ["s.k: required key is missing"])
    got, issues = _run(positive, -1.0, REQUIRED)
    assert got is None and issues == ["s.k: must be > 0, got -1"]
    assert _run(choice, _ABSENT, REQUIRED, {"a": 1}) == (None, ["s.k: required key is missing"])


def test_ints_are_numbers_and_values_come_back_typed() -> None:
    got, issues = _run(ranged, 5, 1.0, 0.0, 10.0)
    assert issues == [] and got == 5.0 and isinstance(got, float)
    got, _ = _run(choice, "two", 1, {"one": 1, "two": 2})
    assert got == 2


def test_resolved_path_is_taken_under_the_base() -> None:
    sink = IssueSink("g.toml")
    base = Path("/var/lib/g")
    assert resolved_path(sink, "s", {}, "k", "a.db", base) == base / "a.db"
    assert resolved_path(sink, "s", {"k": "/abs/b.db"}, "k", "a.db", base) == Path("/abs/b.db")
    assert resolved_path(sink, "s", {"k": "sub/c"}, "k", "a.db", base) == base / "sub/c"
    assert sink.issues == []
    assert resolved_path(sink, "s", {"k": ""}, "k", "a.db", base) == base / "a.db"
    assert [i.reason for i in sink.issues] == ["must not be empty"]


def test_show_writes_numbers_as_a_technician_would() -> None:
    assert [show(x) for x in (5.0, 0.005, 1e-8, 1e7, -3, math.nan)] == [
        "5",
        "0.005",
        "1e-08",
        "10000000",
        "-3",
        "nan",
    ]


def test_existing_path_names_what_is_missing(tmp_path: Path) -> None:
    f = tmp_path / "ca.pem"
    f.write_text("x")
    sink = IssueSink("g.toml")
    assert existing_path(sink, "s", {"k": str(f)}, "k") == f
    assert existing_path(sink, "s", {"k": str(tmp_path)}, "k", directory=True) == tmp_path
    assert existing_path(sink, "s", {}, "k") is None and sink.issues == []
    assert existing_path(sink, "s", {"k": str(tmp_path / "no")}, "k") is None
    assert existing_path(sink, "s", {"k": str(f)}, "k", directory=True) is None
    assert [i.reason for i in sink.issues] == [
        f"no such file: {tmp_path / 'no'}",
        f"no such directory: {f}",
    ]


def test_subtable_is_empty_when_absent_or_wrong() -> None:
    sink = IssueSink("g.toml")
    assert subtable(sink, "s", {"t": {"a": 1}}, "t") == {"a": 1}
    assert subtable(sink, "s", {}, "t") == {} and sink.issues == []
    assert subtable(sink, "s", {"t": 5}, "t") == {}
    assert [i.path for i in sink.issues] == ["s.t"]
