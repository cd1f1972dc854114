"""The ``[bms]`` keys that set the cells kernel's config: which key sets which kernel field, the
range of each, and the checks of the combined config (the kernel's own :meth:`CellsConfig.issues`
and the order of thresholds), each problem reported under the key the technician wrote.

:data:`KERNEL_KEYS` maps each kernel field to the config key that sets it, so a kernel problem
is reported under that key, in the kernel's words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.config.issues import IssueSink
from gateway.config.rules import integer_ranged, ranged
from gateway.core.errors import ConfigIssue
from gateway.native.cells import CellsConfig
from gateway.native.cells_config import MAX_CELLS_PER_BOARD, MAX_DEBOUNCE

LIMIT_KEYS: Final = {
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
LIMIT_INTS: Final = {"debounce_set": "debounce_set", "debounce_clear": "debounce_clear"}
BALANCE_KEYS: Final = {
    "bleed_ohm": "bal_bleed_ohm",
    "soc_window": "bal_soc_window",
    "v_window": "bal_v_window",
    "min_cell_v": "bal_min_v",
    "max_temp_c": "bal_max_temp",
    "max_data_age_s": "bal_max_age_s",
    "max_per_board": "bal_max_per_board",
}
ESTIMATOR_KEYS: Final = {"q_soc": "q_soc", "q_v1": "q_v1", "r_v": "r_v"}

# What a technician could mean, per key (lo, hi, unit): the kernel accepts any finite number the
# C code can compute with (an over_voltage of 1e308 V never trips; a bleed_ohm of 1e-300 ohm
# "bleeds" 1e300 A), so each key is bounded here to the physics of a cell and its board.
CELL_V: Final = (0.5, 5.5, "V")  # any lithium or sodium cell, from flat to overcharged
_CELL_T: Final = (-60.0, 150.0, "°C")  # below: no battery room; above: the cell is burning
KEY_RANGES: Final[Mapping[str, tuple[float, float, str]]] = {
    "over_voltage": CELL_V,
    "over_voltage_clear": CELL_V,
    "under_voltage": CELL_V,
    "under_voltage_clear": CELL_V,
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
    "min_cell_v": CELL_V,
    "max_temp_c": _CELL_T,
    "max_data_age_s": (0.01, 600.0, "s"),
    "max_per_board": (0, MAX_CELLS_PER_BOARD, "cells"),
    "q_soc": (0.0, 1e-3, "per s"),  # SOC variance per second; 1e-3 forgets the SOC in minutes
    "q_v1": (0.0, 1e-2, "V² per s"),
    "r_v": (1e-9, 1.0, "V²"),  # measurement variance: (30 uV)^2 .. (1 V)^2
}

# kernel field -> the config key path that sets it: where a kernel problem is reported.
KERNEL_KEYS: Final = {
    **{field: f"bms.limits.{key}" for key, field in (LIMIT_KEYS | LIMIT_INTS).items()},
    **{field: f"bms.balancing.{key}" for key, field in BALANCE_KEYS.items()},
    **{field: f"bms.estimator.{key}" for key, field in ESTIMATOR_KEYS.items()},
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


def kernel_overrides(
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


def check_kernel(
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
