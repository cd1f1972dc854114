"""``[bms.bus]`` / ``[[bms.lines]]`` validation and the bus budget against a hand count."""

from __future__ import annotations

import tomllib

import pytest

from drivers.cellbus import protocol as p
from drivers.cellbus.config import RackConfig, parse_rack
from gateway.config.issues import IssueSink
from gateway.core.errors import ConfigError

RACK = """
[bms.bus]
baudrate = 460800
response_timeout = 0.01
controller_line = "a"

[[bms.lines]]
name = "a"
port = "/dev/ttyUSB0"
boards = 25

[[bms.lines]]
name = "b"
port = "/dev/ttyUSB1"
boards = 25
first_address = 26

[[bms.lines]]
name = "c"
port = "/dev/ttyUSB2"
boards = 25

[[bms.lines]]
name = "d"
port = "/dev/ttyUSB3"
boards = 25
"""


def parse(text: str) -> tuple[IssueSink, RackConfig]:
    sink = IssueSink("gridgate.toml")
    return sink, parse_rack(sink, tomllib.loads(text)["bms"])


def test_target_rack_parses_and_its_budget_closes() -> None:
    sink, config = parse(RACK)
    sink.raise_if_any()
    assert config.n_cells == 1400 and config.n_temps == 400 and len(config.boards) == 100
    assert [line.controller for line in config.lines] == [True, False, False, False]
    assert config.lines[1].boards[0].address == 26
    # Hand count for line a: broadcast 7 B; per board request 6 B + reply 6 + 9 status
    # + 28 cells + 8 temps = 57 B; controller 6 + 6 + 9 = 21 B.
    b = config.budget(config.lines[0])
    assert b.bytes_per_cycle == 7 + 25 * 57 + 21 == 1453
    assert b.wire_s == pytest.approx(1453 * 10 / 460800)  # 31.5 ms
    assert b.turnaround_s == pytest.approx(26 * 200e-6 + 2e-3)
    assert b.load == pytest.approx(0.387, abs=0.001)
    assert p.sample_size(14, 4) == 45


def test_every_problem_is_reported_with_its_key() -> None:
    text = """
[bms.bus]
baudrate = 9600
retires = 1
response_timeout = 0
controller_line = "z"

[[bms.lines]]
name = "a"
port = "/dev/ttyUSB0"
boards = 25
cells_per_board = 17

[[bms.lines]]
name = "a"
port = "/dev/ttyUSB0"
boards = 300
"""
    sink, _ = parse(text)
    with pytest.raises(ConfigError) as err:
        sink.raise_if_any()
    got = {(i.path, i.reason.split(" ")[0]) for i in err.value.issues}
    assert ("bms.bus.baudrate", "must") in got
    assert ("bms.bus.retires", "unknown") in got
    assert ("bms.bus.response_timeout", "must") in got
    assert ("bms.bus.controller_line", "no") in got
    assert ("bms.lines[0].cells_per_board", "must") in got
    assert ("bms.lines[1].name", "line") in got
    assert ("bms.lines[1].port", "port") in got
    assert ("bms.lines[1].boards", "must") in got
    assert all(i.file == "gridgate.toml" for i in err.value.issues)


def test_a_budget_that_does_not_close_is_refused() -> None:
    sink, _ = parse(RACK.replace("baudrate = 460800", "baudrate = 115200"))
    with pytest.raises(ConfigError, match=r"bms.lines\[0\].boards: bus budget does not close"):
        sink.raise_if_any()
    # 100 boards on one line at 460,800 baud does not close either: 4 lines are needed.
    one_line = """
[[bms.lines]]
name = "a"
port = "/dev/ttyUSB0"
boards = 100
"""
    sink, _ = parse(one_line)
    assert any("budget" in i.reason for i in sink.issues)
