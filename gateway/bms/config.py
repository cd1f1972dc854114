"""``[bms]``: the battery rack the BMS daemon reads, its cell model, limits, balancing, recording.

The rack itself (``[bms.bus]``, ``[[bms.lines]]``) is validated by the cellbus driver's
:func:`~drivers.cellbus.config.parse_rack`; this module owns every other key. Limits and balancing
thresholds are checked by the cells kernel's own :meth:`CellsConfig.issues` (one source of truth
for what the kernel accepts) and each problem is reported under the key the technician wrote.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from drivers.cellbus.config import RackConfig, parse_rack
from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.registry import Section, SectionInput

if TYPE_CHECKING:
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
}
_ESTIMATOR_KEYS: Final = {"q_soc": "q_soc", "q_v1": "q_v1", "r_v": "r_v"}


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
        from gateway.native.cells import CellsConfig

        return CellsConfig.for_chemistry(
            self.chemistry,  # type: ignore[arg-type]
            cells_per_board=self.cells_per_board,
            **dict(self.kernel),
        )


def _kernel_overrides(
    sink: IssueSink, path: str, table: Mapping[str, Any], keys: Mapping[str, str], kind: type
) -> dict[str, tuple[str, Any]]:
    """kernel field -> (config key path, value) for the keys present in ``table``."""
    out: dict[str, tuple[str, Any]] = {}
    for key, field in keys.items():
        value = take(sink, path, table, key, kind, None)
        if value is None:
            continue
        if isinstance(value, float) and math.isnan(value):
            sink.error(join(path, key), "must be a number, not nan")
            continue
        out[field] = (join(path, key), value)
    return out


def _cell_model(sink: IssueSink, table: Mapping[str, Any], chemistry: str) -> CellModel:
    path = "bms.cells"
    check_keys(
        sink, path, table, {"capacity_ah", "r0_ohm", "r1_ohm", "c1_farad", "ocv_soc", "ocv_v"}
    )
    r0, r1, c1 = _CELL_DEFAULTS.get(chemistry, _CELL_DEFAULTS["nmc"])
    # No default capacity: a wrong one silently drifts every SOC, so it must be stated.
    cap = take(sink, path, table, "capacity_ah", float)
    values = {
        "capacity_ah": cap,
        "r0_ohm": take(sink, path, table, "r0_ohm", float, r0),
        "r1_ohm": take(sink, path, table, "r1_ohm", float, r1),
        "c1_farad": take(sink, path, table, "c1_farad", float, c1),
    }
    for key, value in values.items():
        if value is None:
            continue
        positive = key in ("capacity_ah", "c1_farad")
        ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
        if not ok:
            sink.error(join(path, key), "must be finite and " + ("> 0" if positive else ">= 0"))
    soc, volts = _ocv_curve(sink, path, table)
    return CellModel(
        values["capacity_ah"] or 1.0,
        values["r0_ohm"] if values["r0_ohm"] is not None else r0,
        values["r1_ohm"] if values["r1_ohm"] is not None else r1,
        values["c1_farad"] or c1,
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
    if not all(math.isfinite(v) and v > 0 for v in volts) or any(
        b <= a for a, b in itertools.pairwise(volts)
    ):
        sink.error(join(path, "ocv_v"), "must be positive and rise strictly (one V per SOC)")
    return tuple(soc), tuple(volts)


def _balancing(
    sink: IssueSink, table: Mapping[str, Any], cycle: float
) -> tuple[BalancingSettings, dict[str, tuple[str, Any]]]:
    path = "bms.balancing"
    check_keys(
        sink,
        path,
        table,
        set(_BALANCE_KEYS) | {"mode", "target", "max_per_board", "board_timeout_s", "refresh_s"},
    )
    mode = take(sink, path, table, "mode", str, "advisory")
    if mode not in MODES:
        sink.error(join(path, "mode"), f"must be one of {', '.join(map(repr, MODES))}")
    overrides = _kernel_overrides(sink, path, table, _BALANCE_KEYS, float)
    target = take(sink, path, table, "target", str, "soc")
    if target not in TARGETS:
        sink.error(join(path, "target"), f"must be one of {', '.join(map(repr, TARGETS))}")
    else:
        overrides["bal_mode"] = (join(path, "target"), ("off", "soc", "voltage").index(target))
    per_board = take(sink, path, table, "max_per_board", int, None)
    if per_board is not None:
        overrides["bal_max_per_board"] = (join(path, "max_per_board"), per_board)
    timeout = take(sink, path, table, "board_timeout_s", float, 3.0)
    refresh = take(sink, path, table, "refresh_s", float, 1.0)
    if timeout is not None and not 0.1 <= timeout <= 600.0:
        sink.error(join(path, "board_timeout_s"), "must be 0.1..600 s")
    if refresh is not None and timeout is not None and not cycle <= refresh < timeout:
        sink.error(
            join(path, "refresh_s"),
            f"must be at least one cycle ({cycle:g} s) and below board_timeout_s ({timeout:g} s),"
            " or the boards stop bleeding between refreshes",
        )
    return BalancingSettings(mode or "advisory", timeout or 3.0, refresh or 1.0), overrides


def _recording(sink: IssueSink, table: Mapping[str, Any], state_dir: Path) -> RecordingSettings:
    path = "bms.recording"
    check_keys(sink, path, table, {"dir", "max_mb", "files", "every"})
    raw_dir = take(sink, path, table, "dir", str, "bms-recordings")
    max_mb = take(sink, path, table, "max_mb", float, 64.0)
    if max_mb is not None and not 0.01 <= max_mb <= 100_000:
        sink.error(join(path, "max_mb"), "must be 0.01..100000 MB")
    files = take(sink, path, table, "files", int, 10)
    if files is not None and not 1 <= files <= 10_000:
        sink.error(join(path, "files"), "must be 1..10000")
    every = take(sink, path, table, "every", int, 1)
    if every is not None and not 1 <= every <= 36_000:
        sink.error(join(path, "every"), "must be 1..36000 cycles")
    d = Path(raw_dir or "bms-recordings")
    return RecordingSettings(
        d if d.is_absolute() else state_dir / d,
        int((max_mb or 64.0) * 1_000_000),
        files or 10,
        every or 1,
    )


def _check_kernel(
    sink: IssueSink, chemistry: str, cells_per_board: int, overrides: dict[str, tuple[str, Any]]
) -> None:
    """Let the kernel's own validation judge the combined config; report under config keys."""
    from gateway.native.cells import CellsConfig

    values = {field: value for field, (_where, value) in overrides.items()}
    try:
        cfg = CellsConfig.for_chemistry(
            chemistry,  # type: ignore[arg-type]
            cells_per_board=cells_per_board,
            **values,
        )
    except TypeError as exc:  # pragma: no cover - a key map out of step with CellsConfig
        sink.error("bms", f"internal: {exc}")
        return
    names = {
        field: key
        for table in (_LIMIT_KEYS, _LIMIT_INTS, _BALANCE_KEYS, _ESTIMATOR_KEYS)
        for key, field in table.items()
    } | {"bal_max_per_board": "max_per_board", "bal_mode": "target"}
    for issue in cfg.issues():
        field = issue.path.rsplit(".", 1)[-1]
        reason = issue.reason
        # The kernel names its own fields; the technician knows the config's keys.
        for kernel_name in sorted(names, key=len, reverse=True):
            reason = reason.replace(kernel_name, names[kernel_name])
        reason = reason.replace("cells_per_board", f"{cells_per_board} (the cells per board)")
        where = overrides[field][0] if field in overrides else "bms.lines"
        if field == "v_hi" and "v_lo" in overrides and "v_hi" not in overrides:
            where = overrides["v_lo"][0]
        sink.error(where, reason)


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
    chemistry = take(sink, path, table, "chemistry", str)
    if chemistry is not None and chemistry not in CHEMISTRIES:
        sink.error(join(path, "chemistry"), f"must be one of {', '.join(map(repr, CHEMISTRIES))}")
        chemistry = None
    window = take(sink, path, table, "window", float, 60.0)
    if window is not None and not 1.0 <= window <= 3600.0:
        sink.error(join(path, "window"), "must be between 1 and 3600 seconds")
    lost_after = take(sink, path, table, "board_lost_after", int, 3)
    if lost_after is not None and not 1 <= lost_after <= 1000:
        sink.error(join(path, "board_lost_after"), "must be 1..1000 cycles")

    rack = parse_rack(sink, table, path)
    n_cells = {b.n_cells for b in rack.boards}
    if len(n_cells) > 1:
        sink.error(
            join(path, "lines"),
            "every board must have the same cells_per_board (the balancing plan indexes boards "
            f"by it), got {sorted(n_cells)}",
        )
    cycle = rack.bus.cycle

    def sub(key: str) -> Mapping[str, Any]:
        value = take(sink, path, table, key, dict, {})
        return value if isinstance(value, dict) else {}

    chem = chemistry or "nmc"
    cell = _cell_model(sink, sub("cells"), chem)
    limits_t = sub("limits")
    check_keys(sink, join(path, "limits"), limits_t, set(_LIMIT_KEYS) | set(_LIMIT_INTS))
    overrides = _kernel_overrides(sink, join(path, "limits"), limits_t, _LIMIT_KEYS, float)
    overrides |= _kernel_overrides(sink, join(path, "limits"), limits_t, _LIMIT_INTS, int)
    est_t = sub("estimator")
    check_keys(sink, join(path, "estimator"), est_t, set(_ESTIMATOR_KEYS))
    overrides |= _kernel_overrides(sink, join(path, "estimator"), est_t, _ESTIMATOR_KEYS, float)
    balancing, bal_overrides = _balancing(sink, sub("balancing"), cycle)
    overrides |= bal_overrides
    recording = _recording(sink, sub("recording"), state_dir) if "recording" in table else None
    if chemistry is not None:
        _check_kernel(sink, chemistry, next(iter(n_cells), 14), overrides)
    return BmsConfig(
        bool(enabled),
        chem,
        rack,
        cell,
        tuple((field, value) for field, (_w, value) in overrides.items()),
        balancing,
        window or 60.0,
        lost_after or 3,
        recording,
    )


def _parse_section(given: SectionInput) -> BmsConfig:
    return parse_bms(given.sink, given.table("bms"), given.gateway.state_dir)


SECTION = Section(
    name="bms", tables=("bms",), order=20, parse=_parse_section, daemon="gateway.bms.daemon"
)
