"""``[bms]``: the battery rack the BMS daemon reads, its cell model, limits, balancing, recording.

The rack itself (``[bms.bus]``, ``[[bms.lines]]``) is validated by the cellbus driver's
:func:`~drivers.cellbus.config.parse_rack`; this module owns every other key. Limits and balancing
thresholds are checked by the cells kernel's own :meth:`CellsConfig.issues` (one source of truth
for what the kernel accepts); :data:`KERNEL_KEYS` maps each kernel field to the config key that
sets it, so each problem is reported under the key the technician wrote, in the kernel's words.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from drivers.cellbus.config import RackConfig, parse_rack
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
from gateway.core.errors import ConfigIssue
from gateway.native.cells import CellsConfig
from gateway.native.cells_config import MAX_CELLS_PER_BOARD, MAX_DEBOUNCE

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
_LIMIT_KEYS: Final = {
    "over_voltage": "ov_set",
    "over_voltage_clear": "ov_clear",
    "under_voltage": "uv_set",
    "under_voltage_clear": "uv_clear",
    "over_temperature": "ot_set",
    "over_temperature_clear": "ot_clear",
    "under_temperature": "ut_set",
    "under_temperature_clear": "ut_clear",
    "deviation_sigma": "dev_k_set",
    "deviation_sigma_clear": "dev_k_clear",
    "deviation_min_v": "dev_sigma_min",
    "stale_s": "stale_s",
    "open_wire_v": "v_lo",
    "max_plausible_v": "v_hi",
    "jump_v": "jump_v",
}
_LIMIT_INTS: Final = {"debounce_set": "debounce_set", "debounce_clear": "debounce_clear"}
_BALANCE_KEYS: Final = {
    "bleed_ohm": "bal_bleed_ohm",
    "soc_window": "bal_soc_window",
    "v_window": "bal_v_window",
    "min_cell_v": "bal_min_v",
    "max_temp_c": "bal_max_temp",
    "max_data_age_s": "bal_max_age_s",
    "max_per_board": "bal_max_per_board",
}
_ESTIMATOR_KEYS: Final = {"q_soc": "q_soc", "q_v1": "q_v1", "r_v": "r_v"}

# What a technician could mean, per key (lo, hi, unit): the kernel accepts any finite number the
# C code can compute with (an over_voltage of 1e308 V never trips; a bleed_ohm of 1e-300 ohm
# "bleeds" 1e300 A), so each key is bounded here to the physics of a cell and its board.
_CELL_V: Final = (0.5, 5.5, "V")  # any lithium or sodium cell, from flat to overcharged
_CELL_T: Final = (-60.0, 150.0, "°C")  # below: no battery room; above: the cell is burning
KEY_RANGES: Final[Mapping[str, tuple[float, float, str]]] = {
    "over_voltage": _CELL_V,
    "over_voltage_clear": _CELL_V,
    "under_voltage": _CELL_V,
    "under_voltage_clear": _CELL_V,
    "over_temperature": _CELL_T,
    "over_temperature_clear": _CELL_T,
    "under_temperature": _CELL_T,
    "under_temperature_clear": _CELL_T,
    "deviation_sigma": (1.0, 50.0, "sigma"),
    "deviation_sigma_clear": (0.0, 50.0, "sigma"),
    "deviation_min_v": (0.0001, 0.5, "V"),  # the spread floor: 0.1 mV (AFE LSB) .. 0.5 V
    "stale_s": (0.1, 3600.0, "s"),
    "open_wire_v": (0.05, 5.5, "V"),
    "max_plausible_v": (0.5, 6.0, "V"),  # above any cell; a board's ADC ends about here
    "jump_v": (0.001, 5.5, "V"),  # 5.5 V: wider than any cell's range, the check never fires
    "debounce_set": (1, MAX_DEBOUNCE, "cycles"),
    "debounce_clear": (1, MAX_DEBOUNCE, "cycles"),
    "bleed_ohm": (1.0, 10_000.0, "ohm"),  # board bleed resistors are 10-100 ohm
    "soc_window": (0.0, 0.5, ""),  # SOC as a fraction: 0.01 is 1 %
    "v_window": (0.0, 0.5, "V"),
    "min_cell_v": _CELL_V,
    "max_temp_c": _CELL_T,
    "max_data_age_s": (0.01, 600.0, "s"),
    "max_per_board": (0, MAX_CELLS_PER_BOARD, "cells"),
    "q_soc": (0.0, 1e-3, "per s"),  # SOC variance per second; 1e-3 forgets the SOC in minutes
    "q_v1": (0.0, 1e-2, "V² per s"),
    "r_v": (1e-9, 1.0, "V²"),  # measurement variance: (30 uV)^2 .. (1 V)^2
}

# kernel field -> the config key path that sets it: where a kernel problem is reported.
KERNEL_KEYS: Final = {
    **{field: f"bms.limits.{key}" for key, field in (_LIMIT_KEYS | _LIMIT_INTS).items()},
    **{field: f"bms.balancing.{key}" for key, field in _BALANCE_KEYS.items()},
    **{field: f"bms.estimator.{key}" for key, field in _ESTIMATOR_KEYS.items()},
    "bal_mode": "bms.balancing.target",
    "cells_per_board": "bms.lines",  # every line's cells_per_board (one value, checked above)
}
# The fields a kernel check compares with the field it reports (CellsConfig.issues): a problem
# goes to the first of them the config sets, so it lands on the key the technician wrote.
_CHECKED_WITH: Final = {
    "ov_clear": ("ov_set",),
    "uv_clear": ("uv_set",),
    "ot_clear": ("ot_set",),
    "ut_clear": ("ut_set",),
    "dev_k_clear": ("dev_k_set",),
    "v_hi": ("v_lo",),
    "bal_max_per_board": ("cells_per_board",),
}


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


def _kernel_overrides(
    sink: IssueSink, path: str, table: Mapping[str, Any], keys: Mapping[str, str], kind: type
) -> dict[str, Any]:
    """kernel field -> value for the keys present in ``table`` and inside :data:`KEY_RANGES`
    (their paths: KERNEL_KEYS); a key outside its range is reported and left to the default."""
    out: dict[str, Any] = {}
    for key, field in keys.items():
        lo, hi, unit = KEY_RANGES[key]
        value: float | int | None
        if kind is int:
            value = integer_ranged(sink, path, table, key, None, int(lo), int(hi), unit=unit)
        else:
            value = ranged(sink, path, table, key, None, lo, hi, unit=unit)
        if value is not None:
            out[field] = value
    return out


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
    lo, hi, _ = _CELL_V
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
        set(_BALANCE_KEYS) | {"mode", "target", "board_timeout_s", "refresh_s"},
    )
    mode = one_of(sink, path, table, "mode", "advisory", MODES)
    floats = {k: f for k, f in _BALANCE_KEYS.items() if k != "max_per_board"}
    overrides = _kernel_overrides(sink, path, table, floats, float)
    target = one_of(sink, path, table, "target", "soc", TARGETS)
    overrides["bal_mode"] = ("off", "soc", "voltage").index(target)
    overrides |= _kernel_overrides(sink, path, table, {"max_per_board": "bal_max_per_board"}, int)
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


def _kernel_issue_key(issue: ConfigIssue, overrides: Mapping[str, Any]) -> str:
    """The config key a kernel problem belongs to: the reported field's, or the first field it
    is checked with that the config sets (cells_per_board always comes from ``[[bms.lines]]``)."""
    field = issue.path.rsplit(".", 1)[-1]
    for candidate in (field, *_CHECKED_WITH.get(field, ())):
        if candidate in overrides or candidate == "cells_per_board":
            return KERNEL_KEYS[candidate]
    return KERNEL_KEYS.get(field, "bms")


def _kernel_names(issue: ConfigIssue, where: str) -> str:
    """The reason is the kernel's, in its field names: name the config keys of the fields it is
    checked with (and of the reported field, when the problem went to another key)."""
    field = issue.path.rsplit(".", 1)[-1]
    named = [
        f
        for f in (field, *_CHECKED_WITH.get(field, ()))
        if f != "cells_per_board" and f in KERNEL_KEYS and KERNEL_KEYS[f] != where
    ]
    return f" ({'; '.join(f'{f} is {KERNEL_KEYS[f]}' for f in named)})" if named else ""


def _check_kernel(
    sink: IssueSink, chemistry: str, cells_per_board: int, overrides: dict[str, Any]
) -> None:
    """Let the kernel's own validation judge the combined config; report under config keys."""
    try:
        cfg = CellsConfig.for_chemistry(
            chemistry,  # type: ignore[arg-type]
            cells_per_board=cells_per_board,
            **overrides,
        )
    except TypeError as exc:  # pragma: no cover - a key map out of step with CellsConfig
        sink.error("bms", f"internal: {exc}")
        return
    for issue in cfg.issues():
        where = _kernel_issue_key(issue, overrides)
        sink.error(where, issue.reason + _kernel_names(issue, where))
    _check_order(sink, cfg, overrides)


# (lower field, higher field, why): thresholds that only make sense in this order, checked on the
# combined config (the chemistry's defaults and what the config sets).
_ORDER: Final = (
    ("uv_set", "ov_set", "the under-voltage trip must lie below the over-voltage trip"),
    ("ut_set", "ot_set", "the under-temperature trip must lie below the over-temperature trip"),
    ("v_lo", "uv_set", "an open wire must read below the under-voltage trip, or it trips as UV"),
    ("ov_set", "v_hi", "the over-voltage trip must be a plausible reading, or it never trips"),
    ("uv_set", "bal_min_v", "balancing must stop above the under-voltage trip"),
    ("bal_max_temp", "ot_set", "balancing must stop below the over-temperature trip"),
)


def _check_order(sink: IssueSink, cfg: CellsConfig, overrides: Mapping[str, Any]) -> None:
    """Report each pair of :data:`_ORDER` out of order, under the key the config sets (the higher
    one when it sets both); a pair of two defaults is the chemistry's and always in order. A key
    already reported is not reported again."""
    reported = {issue.path for issue in sink.issues}
    for low, high, why in _ORDER:
        a, b = getattr(cfg, low), getattr(cfg, high)
        if a < b:
            continue
        field = high if high in overrides else low if low in overrides else None
        if field is None or KERNEL_KEYS[field] in reported:
            continue
        reported.add(KERNEL_KEYS[field])
        other, relation = (low, "above") if field == high else (high, "below")
        limit = getattr(cfg, other)
        sink.error(
            KERNEL_KEYS[field], f"must be {relation} {KERNEL_KEYS[other]} ({limit:g}): {why}"
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
    check_keys(sink, join(path, "limits"), limits_t, set(_LIMIT_KEYS) | set(_LIMIT_INTS))
    overrides = _kernel_overrides(sink, join(path, "limits"), limits_t, _LIMIT_KEYS, float)
    overrides |= _kernel_overrides(sink, join(path, "limits"), limits_t, _LIMIT_INTS, int)
    est_t = subtable(sink, path, table, "estimator")
    check_keys(sink, join(path, "estimator"), est_t, set(_ESTIMATOR_KEYS))
    overrides |= _kernel_overrides(sink, join(path, "estimator"), est_t, _ESTIMATOR_KEYS, float)
    balancing, bal_overrides = _balancing(sink, subtable(sink, path, table, "balancing"), cycle)
    overrides |= bal_overrides
    recording = None
    if "recording" in table:
        recording = _recording(sink, subtable(sink, path, table, "recording"), state_dir)
    if chemistry is not None:
        _check_kernel(sink, chemistry, next(iter(n_cells), 14), overrides)
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
