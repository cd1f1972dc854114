"""Fuzzing ``gridgate check-config``: whatever the file holds, the answer is exit 0, or exit 78 with
``FILE: key.path: reason`` lines; never a traceback, never another exit code.

Three kinds of input, each bounded and deterministic (``derandomize``), so CI sees the same
documents every run:

- documents built from the real schema: the keys of every config case folder and the example
  config, a few of them set to random values of random types (NaN, 1e308, control characters,
  arrays where tables belong, ...), on top of a valid config or on their own, as the main file
  and as a drop-in next to a valid main file;
- the case files themselves, mutated byte-wise (cut, doubled, spliced, a number replaced);
- random bytes.

``GRIDGATE_FUZZ_EXAMPLES`` raises the number of examples per kind for a longer campaign (default
200); each test prints how many inputs it tried and what the exit codes were (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import signal
import tomllib
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "cases" / "config"
EXAMPLES = int(os.environ.get("GRIDGATE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
OK_BASES = ("ok_full", "bms_ok", "plant_ok", "estimation_errors")


def _case_texts() -> dict[str, bytes]:
    texts = {p.parent.name: p.read_bytes() for p in sorted(CASES.glob("*/gridgate.toml"))}
    texts["example"] = (ROOT / "examples" / "gridgate.toml").read_bytes()
    return texts


def _parsed(text: bytes) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return None


def _paths(doc: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every table and leaf path of a document (list items are leaves of their key)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


TEXTS = _case_texts()
DOCS = {name: doc for name, text in TEXTS.items() if (doc := _parsed(text)) is not None}
SCHEMA_PATHS = sorted({p for doc in DOCS.values() for p in _paths(doc)})
KEYS = sorted({p[-1] for p in SCHEMA_PATHS})


# -- random TOML values and a writer (TOML has no writer in the standard library) ---------------

_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(),  # TOML integers are unbounded
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, -(2**63), 10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e-300, 1e308, -0.0, 5e-324, 0.5]),
)
_strings = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "\x00", "a\nb", "/", "..", "tcp", "rtu", "abc", "/dev/null"]),
    st.sampled_from(KEYS),
)
_scalars = st.one_of(
    _numbers,
    _strings,
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
)
VALUES = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner, max_size=4),
    ),
    max_leaves=8,
)


def _key(k: str) -> str:
    return json.dumps(k, ensure_ascii=False)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(doc: dict[str, Any]) -> str:
    """Every leaf as one dotted-key line: simple, and any document can be written this way."""
    lines: list[str] = []

    def walk(value: Any, prefix: list[str]) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, [*prefix, k])
        else:
            lines.append(f"{'.'.join(_key(k) for k in prefix)} = {_value(value)}")

    for k, v in doc.items():
        walk(v, [k])
    return "\n".join(lines) + "\n"


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = doc
    for key in path[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = node[key] = {}
        node = nxt
    if value is _DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


_DELETE = object()


@st.composite
def schema_documents(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real config (or nothing) with a few schema keys set to random values or deleted."""
    base = draw(st.sampled_from([None, *OK_BASES, "example"]))
    doc: dict[str, Any] = json.loads(json.dumps(DOCS[base])) if base else {}
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(SCHEMA_PATHS))
        value = draw(st.one_of(VALUES, st.just(_DELETE))) if base else draw(VALUES)
        _set(doc, path, value)
    return (base if base in OK_BASES else "ok_full"), to_toml(doc).encode()


@st.composite
def mutated_cases(draw: st.DrawFn) -> tuple[str, bytes]:
    """A case file cut, doubled, spliced with random bytes, or with a number replaced."""
    name = draw(st.sampled_from(sorted(TEXTS)))
    data = TEXTS[name]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data)))
        j = draw(st.integers(i, min(len(data), i + 40)))
        how = draw(st.sampled_from(["cut", "insert", "double", "number", "swap"]))
        if how == "cut":
            data = data[:i] + data[j:]
        elif how == "insert":
            data = data[:i] + draw(st.binary(max_size=8)) + data[i:]
        elif how == "double":
            data = data[:j] + data[i:j] + data[j:]
        elif how == "swap":
            data = (
                data[:i] + draw(st.sampled_from([b"[", b"]", b"{", b"=", b"\n", b'"'])) + data[j:]
            )
        else:
            numbers = list(re.finditer(rb"(?<![\w.])\d+(\.\d+)?", data))
            if numbers:
                m = draw(st.sampled_from(numbers))
                new = draw(st.sampled_from([b"nan", b"inf", b"-1", b"0", b"1e308", b"1e-300"]))
                data = data[: m.start()] + new + data[m.end() :]
    return (name if name != "example" else "ok_full"), data


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One copy per case folder (profiles, feeder files and drop-ins next to the file)."""
    root = tmp_path_factory.mktemp("fuzz")
    dirs = {}
    for case in sorted(p for p in CASES.iterdir() if p.is_dir()):
        dirs[case.name] = shutil.copytree(case, root / case.name)
    dirs["dropin_fuzz"] = shutil.copytree(CASES / "ok_full", root / "dropin_fuzz")
    (dirs["dropin_fuzz"] / "conf.d").mkdir()
    return dirs


# Every stderr line of a refused config: the file, then the key (if any), then the reason.
_LINE = re.compile(r"^(/[^:]+): ([^\n]+)$")


def check_config(cfg: Path, stats: Counter[str]) -> None:
    """Run ``gridgate -c CFG check-config`` in this process; fail on anything but 0 or 78."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(["-c", str(cfg), "check-config"])  # an exception fails the test: a traceback
    stats[f"exit {rc}"] += 1
    assert rc in (0, 78), (rc, err.getvalue())
    lines = err.getvalue().splitlines()
    if rc == 0:
        assert "config OK" in out.getvalue()
        return
    assert lines and re.fullmatch(r"\d+ problem\(s\) found", lines[-1]), lines
    for line in lines[:-1]:
        m = _LINE.match(line)
        assert m, line
        assert m.group(1).startswith(str(cfg.parent)), line


def _run(workdirs: dict[str, Path], case: str, data: bytes, stats: Counter[str]) -> None:
    cfg = workdirs[case] / "fuzz.toml"
    cfg.write_bytes(data)
    check_config(cfg, stats)


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)


def test_schema_documents(workdirs: dict[str, Path]) -> None:
    stats: Counter[str] = Counter()

    @FUZZ
    @given(schema_documents())
    def one(drawn: tuple[str, bytes]) -> None:
        stats["documents"] += 1
        _run(workdirs, *drawn, stats)

    one()
    print(f"\nfuzz schema documents: {dict(stats)}")
    assert stats["exit 0"] and stats["exit 78"], stats  # both verdicts were reached


def test_mutated_case_files(workdirs: dict[str, Path]) -> None:
    stats: Counter[str] = Counter()

    @FUZZ
    @given(mutated_cases())
    def one(drawn: tuple[str, bytes]) -> None:
        stats["documents"] += 1
        _run(workdirs, *drawn, stats)

    one()
    print(f"\nfuzz mutated case files: {dict(stats)}")


def test_schema_dropins(workdirs: dict[str, Path]) -> None:
    """A valid main file plus a random drop-in: merged keys, replaced tables, origins."""
    stats: Counter[str] = Counter()
    main = workdirs["dropin_fuzz"] / "fuzz.toml"
    main.write_bytes(TEXTS["ok_full"])
    dropin = workdirs["dropin_fuzz"] / "conf.d" / "50-fuzz.toml"

    @FUZZ
    @given(schema_documents())
    def one(drawn: tuple[str, bytes]) -> None:
        stats["documents"] += 1
        dropin.write_bytes(drawn[1])
        check_config(main, stats)

    one()
    print(f"\nfuzz schema drop-ins: {dict(stats)}")
    assert stats["exit 0"] and stats["exit 78"], stats


def test_random_bytes(workdirs: dict[str, Path]) -> None:
    stats: Counter[str] = Counter()

    @FUZZ
    @given(st.binary(max_size=512))
    @example(b"x = " + b"[" * 5000 + b"]" * 5000)  # the findings of issue 11, always tried
    @example(b'[gateway]\nsite = "caf\xe9"\n')
    @example(b'"bms"."\\u001e" = 0\n')  # a record separator in a key split the line
    @example(b"[grid]\nx = " + b"{a = " * 60 + b"1" + b"}" * 60)
    @example(b"[gateway]\nstatus_interval = 1" + b"0" * 400)  # OverflowError in take()
    @example(b"[gateway]\nstatus_interval = 1" + b"0" * 5000)  # ValueError in tomllib
    def one(data: bytes) -> None:
        stats["byte strings"] += 1
        _run(workdirs, "ok_full", data, stats)

    one()
    print(f"\nfuzz random bytes: {dict(stats)}")


def test_writer_round_trips() -> None:
    """The fuzzer's TOML writer writes what tomllib reads back (else it only tests the parser)."""
    for name in OK_BASES:
        assert tomllib.loads(to_toml(DOCS[name])) == DOCS[name]


HOSTILE_STRINGS = ["\x00", "a\nb", "/dev/zero", "z" * 5000, "/proc", "", "../../../etc/shadow"]


def _string_leaves(doc: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _string_leaves(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _string_leaves(v, (*prefix, i))
    elif isinstance(doc, str):
        yield prefix


class _HangError(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise _HangError


def test_hostile_strings_in_every_string_key(workdirs: dict[str, Path]) -> None:
    """Every string of the valid configs replaced by a NUL, a newline, /dev/zero (a file that
    never ends), a 5,000-byte name, a directory, "" or a path escape: no traceback, no hang."""
    stats: Counter[str] = Counter()
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for base in (*OK_BASES, "example"):
            case = base if base in OK_BASES else "ok_full"
            for leaf in _string_leaves(DOCS[base]):
                for value in HOSTILE_STRINGS:
                    doc = json.loads(json.dumps(DOCS[base]))
                    node = doc
                    for step in leaf[:-1]:
                        node = node[step]
                    node[leaf[-1]] = value
                    stats["documents"] += 1
                    signal.alarm(20)
                    try:
                        _run(workdirs, case, to_toml(doc).encode(), stats)
                    except _HangError:
                        pytest.fail(f"check-config hung with {leaf} = {value[:20]!r}")
                    finally:
                        signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    print(f"\nfuzz hostile strings: {dict(stats)}")
