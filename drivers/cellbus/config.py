"""The ``[bms.bus]`` and ``[[bms.lines]]`` config: which boards sit on which serial line.

String order is physical order: lines in the order they are listed, boards by address on each
line, cells by channel on each board. A config whose bus budget does not close at the cycle
rate is refused here, before any port is opened.

The BMS daemon owns the rest of ``[bms]``; :func:`parse_rack` checks only the two keys it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drivers.cellbus import protocol as p
from gateway.config.issues import REQUIRED, IssueSink, check_keys, join, take
from gateway.config.rules import integer_ranged, one_of, ranged, safe_name
from gateway.config.text_rules import plain_text

BAUDRATES = (115_200, 230_400, 460_800, 500_000, 921_600, 1_000_000)
_MAX_LOAD = 0.8  # of the cycle: leaves room for a few silent boards' timeouts and retries


@dataclass(frozen=True)
class BoardSpec:
    address: int
    n_cells: int
    n_temps: int


@dataclass(frozen=True)
class LineSettings:
    name: str
    port: str
    baudrate: int
    boards: tuple[BoardSpec, ...]
    controller: bool  # the string controller (address 0) is on this line


@dataclass(frozen=True)
class BusSettings:
    response_timeout: float = 0.010  # s, from the end of the request to the complete reply
    inter_frame_gap: float = 0.0001  # s of idle line the master keeps between frames
    conversion_time: float = 0.002  # s between SAMPLE_NOW and the first read
    retries: int = 1  # per board and cycle, after a CRC error, short or unexpected frame
    cycle: float = 0.1  # s; the daemon's period, used here for the budget check


@dataclass(frozen=True)
class RackConfig:
    bus: BusSettings
    lines: tuple[LineSettings, ...]

    @property
    def boards(self) -> tuple[BoardSpec, ...]:
        return tuple(b for line in self.lines for b in line.boards)

    @property
    def n_cells(self) -> int:
        return sum(b.n_cells for b in self.boards)

    @property
    def n_temps(self) -> int:
        return sum(b.n_temps for b in self.boards)

    def budget(self, line: LineSettings) -> p.Budget:
        """Worst-case bus time of one cycle on ``line`` (boards assumed uniform per line)."""
        first = line.boards[0] if line.boards else BoardSpec(1, 0, 0)
        return p.line_budget(
            line.baudrate,
            len(line.boards),
            first.n_cells,
            first.n_temps,
            controller=line.controller,
            cycle_s=self.bus.cycle,
            conversion_s=self.bus.conversion_time,
        )


_BUS_KEYS = {
    "baudrate",
    "response_timeout",
    "inter_frame_gap",
    "conversion_time",
    "retries",
    "cycle",
    "controller_line",
}
_LINE_KEYS = {
    "name",
    "port",
    "baudrate",
    "boards",
    "first_address",
    "cells_per_board",
    "temps_per_board",
}


# Seconds, per key: what a cell-board bus at 115200..1000000 baud can mean. 1e-300 s passed as
# "> 0" and made every read time out at once (or the cycle a busy loop); 1e308 s hung the daemon.
_SECONDS = {
    # From the end of a request to the whole reply: a reply is under a millisecond on the wire,
    # a USB adapter adds a few; a second is ten cycles of a 10 Hz rack.
    "response_timeout": (0.001, 1.0),
    # Idle line between frames: 10 us is one character at 1 Mbaud.
    "inter_frame_gap": (0.00001, 0.01),
    # SAMPLE_NOW to the first read: an AFE converts in microseconds to milliseconds.
    "conversion_time": (0.0001, 0.5),
    # The daemon's period: 100 Hz .. once a minute.
    "cycle": (0.01, 60.0),
}
# A serial device path: no control characters (a NUL cut the path short in open(2), a newline
# forged a log line), at most PATH_MAX.
_PORT_MAX = 4095


def _seconds(sink: IssueSink, path: str, t: Mapping[str, Any], key: str, default: float) -> float:
    return ranged(sink, path, t, key, default, *_SECONDS[key], unit="s")


def parse_rack(sink: IssueSink, bms: Mapping[str, Any], path: str = "bms") -> RackConfig:
    """Validate ``bms.bus`` and ``bms.lines``; every problem goes to ``sink``."""
    bus_path = join(path, "bus")
    bus_t = take(sink, path, bms, "bus", dict, {})
    bus_t = bus_t if isinstance(bus_t, dict) else {}
    check_keys(sink, bus_path, bus_t, _BUS_KEYS)
    d = BusSettings()
    bus = BusSettings(
        response_timeout=_seconds(sink, bus_path, bus_t, "response_timeout", d.response_timeout),
        inter_frame_gap=_seconds(sink, bus_path, bus_t, "inter_frame_gap", d.inter_frame_gap),
        conversion_time=_seconds(sink, bus_path, bus_t, "conversion_time", d.conversion_time),
        retries=integer_ranged(sink, bus_path, bus_t, "retries", d.retries, 0, 3),
        cycle=_seconds(sink, bus_path, bus_t, "cycle", d.cycle),
    )
    baud = one_of(sink, bus_path, bus_t, "baudrate", 460_800, BAUDRATES)
    controller = take(sink, bus_path, bus_t, "controller_line", str, "")

    lines_path = join(path, "lines")
    raw_lines = take(sink, path, bms, "lines", list)
    if raw_lines is None:
        return RackConfig(bus, ())
    if not raw_lines:
        sink.error(lines_path, "at least one line is needed")
    names: set[str] = set()
    ports: set[str] = set()
    lines: list[LineSettings] = []
    for i, raw in enumerate(raw_lines):
        lp = join(lines_path, i)
        if not isinstance(raw, dict):
            sink.error(lp, "expected a table")
            continue
        check_keys(sink, lp, raw, _LINE_KEYS)
        name = take(sink, lp, raw, "name", str) or f"line{i}"
        if not safe_name(sink, join(lp, "name"), name, "line"):
            name = f"line{i}"  # reported: a name that goes into log lines and status keys
        elif name in names:
            sink.error(join(lp, "name"), f"line {name!r} is listed twice")
        names.add(name)
        port = plain_text(sink, lp, raw, "port", REQUIRED, max_len=_PORT_MAX) or ""
        if port and port in ports:
            sink.error(join(lp, "port"), f"port {port} is used by another line")
        ports.add(port)
        n_boards = integer_ranged(sink, lp, raw, "boards", 1, 1, p.LAST_BOARD)
        first = integer_ranged(sink, lp, raw, "first_address", 1, p.FIRST_BOARD, p.LAST_BOARD)
        if first + n_boards - 1 > p.LAST_BOARD:
            sink.error(join(lp, "boards"), f"addresses run past {p.LAST_BOARD}")
        cells = integer_ranged(sink, lp, raw, "cells_per_board", 14, 1, p.MAX_CELLS)
        temps = integer_ranged(sink, lp, raw, "temps_per_board", 4, 0, p.MAX_TEMPS)
        boards = tuple(
            BoardSpec(a, cells, temps)
            for a in range(first, min(first + n_boards, p.LAST_BOARD + 1))
        )
        line_baud = one_of(sink, lp, raw, "baudrate", baud, BAUDRATES)
        lines.append(LineSettings(name, port, line_baud, boards, False))
    if lines:
        target = controller or lines[0].name
        if target not in names:
            sink.error(join(bus_path, "controller_line"), f"no line named {target!r}")
        lines = [
            LineSettings(x.name, x.port, x.baudrate, x.boards, x.name == target) for x in lines
        ]
    config = RackConfig(bus, tuple(lines))
    for i, line in enumerate(config.lines):
        b = config.budget(line)
        if b.busy_s > _MAX_LOAD * bus.cycle:
            sink.error(
                join(join(lines_path, i), "boards"),
                f"bus budget does not close: {b.busy_s * 1e3:.1f} ms of bus time per "
                f"{bus.cycle * 1e3:.0f} ms cycle at {line.baudrate} baud "
                f"(at most {_MAX_LOAD:.0%}); raise the baud rate or split the line",
            )
    return config
