"""``[bms]``: the battery rack the BMS daemon reads, its cell model, limits, balancing, recording.

The rack itself (``[bms.bus]``, ``[[bms.lines]]``) is validated by the cellbus driver's
:func:`~drivers.cellbus.config.parse_rack`; this module owns every other key. Limits and balancing
thresholds, their ranges and the checks of the combined kernel config live in
:mod:`gateway.bms.kernel_config` (:data:`KERNEL_KEYS` maps each kernel field to the config key
that sets it, so each problem is reported under the key the technician wrote).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from drivers.cellbus.config import RackConfig, parse_rack
from gateway.bms.kernel_config import (
    BALANCE_KEYS,
    CELL_V,
    ESTIMATOR_KEYS,
    LIMIT_INTS,
    LIMIT_KEYS,
    check_kernel,
    kernel_overrides,
)
from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.registry import Section, SectionInput
from gateway.config.rules import (
    REQUIRED,
    integer_ranged,
    one_of,
    ranged,
    resolved_path,
    subtable,
)
from gateway.native.cells import CellsConfig

CHEMISTRIES: Final = ("lfp", "nmc")
MODES: Final = ("advisory", "active")
TARGETS: Final = ("soc", "voltage", "off")

# Typical 1RC fits per chemistry (ohm, ohm, farad): a starting point, not a datasheet. A field
# rack should set the cell maker's values; `gridgate replay bms` is how to try a new set.
_CELL_DEFAULTS: Final = {
    "nmc": (0.8e-3, 0.8e-3, 187_500.0),  # tau = 150 s
    "lfp": (0.25e-3, 0.3e-3, 833_000.0),  # tau = 250 s
}


# config key -> kernel field (gateway.native.cells.CellsConfig)
@dataclass(frozen=True)
class CellModel:
    """The estimator's nominal cell (every cell gets the same; the EKF absorbs the spread)."""

    capacity_ah: float
    r0_ohm: float
    r1_ohm: float
    c1_farad: float
    # The cell maker's OCV curve as breakpoints (SOC 0..1, V); None: the built-in typical curve.
    ocv_soc: tuple[float, ...] | None = None
    ocv_v: tuple[float, ...] | None = None

    @property
    def tau_s(self) -> float:
        return self.r1_ohm * self.c1_farad


@dataclass(frozen=True)
class BalancingSettings:
    mode: str  # "advisory": plan published, nothing written; "active": masks written to boards
    board_timeout_s: float  # a board stops bleeding by itself this long after the last command
    refresh_s: float  # an unchanged mask is re-sent this often (well inside the board timeout)


@dataclass(frozen=True)
class RecordingSettings:
    dir: Path
    max_bytes: int  # per file, then the next file is started
    files: int  # newest files kept; older ones are deleted
    every: int  # record every Nth cycle


@dataclass(frozen=True)
class BmsConfig:
    enabled: bool
    chemistry: str
    rack: RackConfig
    cell: CellModel
    kernel: tuple[tuple[str, float | int], ...]  # CellsConfig fields set by the config
    balancing: BalancingSettings
    window: float  # seconds per summary
    board_lost_after: int  # cycles without a sample before a board's alarm is raised
    recording: RecordingSettings | None

    @property
    def cycle(self) -> float:
        return self.rack.bus.cycle

    @property
    def cells_per_board(self) -> int:
        boards = self.rack.boards
        return boards[0].n_cells if boards else 1

    def cells_config(self) -> CellsConfig:
        """The kernel's config: chemistry defaults, then what ``[bms]`` sets."""
        return CellsConfig.for_chemistry(
            self.chemistry,  # type: ignore[arg-type]
            cells_per_board=self.cells_per_board,
            **dict(self.kernel),
        )


def _cell_model(sink: IssueSink, table: Mapping[str, Any], chemistry: str) -> CellModel:
    path = "bms.cells"
    check_keys(
        sink, path, table, {"capacity_ah", "r0_ohm", "r1_ohm", "c1_farad", "ocv_soc", "ocv_v"}
    )
    r0, r1, c1 = _CELL_DEFAULTS.get(chemistry, _CELL_DEFAULTS["nmc"])
    # No default capacity: a wrong one silently drifts every SOC, so it must be stated.
    # 0.01 Ah is a coin cell; 10,000 Ah is beyond any single cell made for a rack.
    capacity = ranged(sink, path, table, "capacity_ah", REQUIRED, 0.01, 10_000.0, unit="Ah")
    soc, volts = _ocv_curve(sink, path, table)
    return CellModel(
        capacity if capacity is not None else 1.0,  # only when refused: the config is rejected
        # A cell's internal resistances are milliohms; an ohm is a broken connection.
        ranged(sink, path, table, "r0_ohm", r0, 0.0, 1.0, unit="ohm"),
        ranged(sink, path, table, "r1_ohm", r1, 0.0, 1.0, unit="ohm"),
        # tau = r1 * c1 is seconds to hours: 1 F .. 1e8 F covers every fit with r1 in range.
        ranged(sink, path, table, "c1_farad", c1, 1.0, 1e8, unit="F"),
        soc,
        volts,
    )


def _floats(sink: IssueSink, path: str, table: Mapping[str, Any], key: str) -> list[float] | None:
    raw = take(sink, path, table, key, list, None)
    if raw is None:
        return None
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw):
        sink.error(join(path, key), "expected an array of numbers")
        return None
    return [float(x) for x in raw]


def _ocv_curve(
    sink: IssueSink, path: str, table: Mapping[str, Any]
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    soc, volts = _floats(sink, path, table, "ocv_soc"), _floats(sink, path, table, "ocv_v")
    if soc is None and volts is None:
        return None, None
    if soc is None or volts is None:
        missing = "ocv_v" if volts is None else "ocv_soc"
        sink.error(join(path, missing), "ocv_soc and ocv_v go together")
        return None, None
    if len(soc) != len(volts) or len(soc) < 2:
        sink.error(join(path, "ocv_v"), f"needs as many values as ocv_soc ({len(soc)}), >= 2")
        return None, None
    if soc[0] != 0.0 or soc[-1] != 1.0 or any(b <= a for a, b in itertools.pairwise(soc)):
        sink.error(join(path, "ocv_soc"), "must rise strictly from 0 to 1")
    lo, hi, _ = CELL_V
    if not all(math.isfinite(v) and lo <= v <= hi for v in volts) or any(
        b <= a for a, b in itertools.pairwise(volts)
    ):
        sink.error(
            join(path, "ocv_v"),
            f"must lie between {lo:g} and {hi:g} V and rise strictly (one V per SOC)",
        )
    return tuple(soc), tuple(volts)


def _balancing(
    sink: IssueSink, table: Mapping[str, Any], cycle: float
) -> tuple[BalancingSettings, dict[str, Any]]:
    path = "bms.balancing"
    check_keys(
        sink,
        path,
        table,
        set(BALANCE_KEYS) | {"mode", "target", "board_timeout_s", "refresh_s"},
    )
    mode = one_of(sink, path, table, "mode", "advisory", MODES)
    floats = {k: f for k, f in BALANCE_KEYS.items() if k != "max_per_board"}
    overrides = kernel_overrides(sink, path, table, floats, float)
    target = one_of(sink, path, table, "target", "soc", TARGETS)
    overrides["bal_mode"] = ("off", "soc", "voltage").index(target)
    overrides |= kernel_overrides(sink, path, table, {"max_per_board": "bal_max_per_board"}, int)
    timeout = ranged(sink, path, table, "board_timeout_s", 3.0, 0.1, 600.0, unit="s")
    before = len(sink.issues)
    refresh = ranged(sink, path, table, "refresh_s", 1.0, 0.01, 600.0, unit="s")
    if len(sink.issues) == before and not cycle <= refresh < timeout:
        sink.error(
            join(path, "refresh_s"),
            f"must be at least one cycle ({cycle:g} s) and below board_timeout_s ({timeout:g} s),"
            " or the boards stop bleeding between refreshes",
        )
    return BalancingSettings(mode, timeout, refresh), overrides


def _recording(sink: IssueSink, table: Mapping[str, Any], state_dir: Path) -> RecordingSettings:
    path = "bms.recording"
    check_keys(sink, path, table, {"dir", "max_mb", "files", "every"})
    return RecordingSettings(
        resolved_path(sink, path, table, "dir", "bms-recordings", state_dir),
        int(ranged(sink, path, table, "max_mb", 64.0, 0.01, 100_000.0, unit="MB") * 1_000_000),
        integer_ranged(sink, path, table, "files", 10, 1, 10_000),
        integer_ranged(sink, path, table, "every", 1, 1, 36_000, unit="cycles"),
    )


def parse_bms(sink: IssueSink, table: Mapping[str, Any], state_dir: Path) -> BmsConfig:
    path = "bms"
    check_keys(
        sink,
        path,
        table,
        {
            "enabled",
            "chemistry",
            "window",
            "board_lost_after",
            "bus",
            "lines",
            "cells",
            "limits",
            "balancing",
            "estimator",
            "recording",
        },
    )
    enabled = take(sink, path, table, "enabled", bool, True)
    chemistry = one_of(sink, path, table, "chemistry", REQUIRED, CHEMISTRIES)
    window = ranged(sink, path, table, "window", 60.0, 1.0, 3600.0, unit="seconds")
    lost_after = integer_ranged(sink, path, table, "board_lost_after", 3, 1, 1000, unit="cycles")

    rack = parse_rack(sink, table, path)
    n_cells = {b.n_cells for b in rack.boards}
    if len(n_cells) > 1:
        sink.error(
            join(path, "lines"),
            "every board must have the same cells_per_board (the balancing plan indexes boards "
            f"by it), got {sorted(n_cells)}",
        )
    cycle = rack.bus.cycle

    chem = chemistry or "nmc"  # only when refused (reported): the rest is still checked
    cell = _cell_model(sink, subtable(sink, path, table, "cells"), chem)
    limits_t = subtable(sink, path, table, "limits")
    check_keys(sink, join(path, "limits"), limits_t, set(LIMIT_KEYS) | set(LIMIT_INTS))
    overrides = kernel_overrides(sink, join(path, "limits"), limits_t, LIMIT_KEYS, float)
    overrides |= kernel_overrides(sink, join(path, "limits"), limits_t, LIMIT_INTS, int)
    est_t = subtable(sink, path, table, "estimator")
    check_keys(sink, join(path, "estimator"), est_t, set(ESTIMATOR_KEYS))
    overrides |= kernel_overrides(sink, join(path, "estimator"), est_t, ESTIMATOR_KEYS, float)
    balancing, bal_overrides = _balancing(sink, subtable(sink, path, table, "balancing"), cycle)
    overrides |= bal_overrides
    recording = None
    if "recording" in table:
        recording = _recording(sink, subtable(sink, path, table, "recording"), state_dir)
    if chemistry is not None:
        check_kernel(sink, chemistry, next(iter(n_cells), 14), overrides)
    return BmsConfig(
        bool(enabled),
        chem,
        rack,
        cell,
        tuple(overrides.items()),
        balancing,
        window,
        lost_after,
        recording,
    )


def _parse_section(given: SectionInput) -> BmsConfig:
    return parse_bms(given.sink, given.table("bms"), given.gateway.state_dir)


SECTION = Section(
    name="bms", tables=("bms",), order=20, parse=_parse_section, daemon="gateway.bms.daemon"
)
