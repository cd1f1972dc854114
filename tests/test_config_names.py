"""Device and point names are restricted to a safe set: they become MQTT topic levels, words in log
lines and keys in the status files. The case folder ``tests/cases/config/bad_names`` holds the
exact messages; here: check-config's exit code and output, and the rule as a property.
"""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.opcua.config import parse_opcua
from gateway.config.issues import IssueSink
from gateway.config.rules import safe_name, shown_key

CASE = Path(__file__).parent / "cases" / "config" / "bad_names"


def test_check_config_refuses_forged_names_with_78_and_one_line_per_problem() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(CASE / "gridgate.toml"), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 78, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    # Every line is a FILE: key: reason line or the count: the newline in a meter name did not
    # make a line of its own ("INFO grid: all meters ok" would look like the daemon's log).
    assert all(line.startswith(f"{CASE}/gridgate.toml: ") for line in lines[:-1]), lines
    assert lines[-1] == "7 problem(s) found"
    assert not any(line.startswith("INFO") or line.startswith("ERROR") for line in lines)
    assert f'{CASE}/gridgate.toml: grid.meters."pv/+": meter name "pv/+" must be' in proc.stderr


def _unsafe(c: str) -> bool:
    return c in "+#/ " or unicodedata.category(c).startswith("C") or not c.isascii()


@given(st.text(max_size=80))
def test_an_accepted_name_is_a_plain_topic_level(name: str) -> None:
    sink = IssueSink("f.toml")
    if safe_name(sink, "grid.meters.x", name, "meter"):
        assert 1 <= len(name) <= 64 and not any(_unsafe(c) for c in name)
        assert shown_key(name) == name and not sink.issues
    else:
        (issue,) = sink.issues
        text = str(issue)
        # the refusal itself is one printable ASCII line, whatever the name held
        assert text.isascii() and text.isprintable(), text


def test_names_that_were_fine_stay_fine() -> None:
    sink = IssueSink("f.toml")
    for name in ("head", "pv_3", "meter-7", "voltage_l1", "energy.import", "_x", "A" * 64):
        assert safe_name(sink, "p", name, "point"), name
    assert not sink.issues
    for name in ("", ".x", "-x", "A" * 65, "a b", "a\nb", "a\x00", "a+", "a#", "a/b", "ä"):
        assert not safe_name(sink, "p", name, "point"), name


@pytest.mark.parametrize("name", ["speed\n", "speed\nINFO plant: all ok", "a/b", "a+b", ""])
def test_an_opc_ua_node_name_cannot_forge_a_log_line(name: str) -> None:
    sink = IssueSink("gridgate.toml")
    parse_opcua(
        sink,
        {
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "security_policy": "None",
            "security_mode": "None",
            "allow_insecure": True,
            "nodes": [{"name": name, "node_id": "ns=2;s=n"}],
        },
    )
    assert [i.path for i in sink.issues] == ["plant.opcua.nodes[0].name"]
