"""Per-cell parameter and state records and the string summary the cells kernel shares.

The layouts of gg_cell_param_t and gg_cells_summary_t are asserted at import; the state is
Python's gathered view of the kernel's per-field arrays (see CellEstimator.state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.core.errors import NativeError
from gateway.native.ffi import assert_layout

PARAM_DTYPE: Final = np.dtype(
    [("capacity_ah", np.float64), ("r0", np.float64), ("r1", np.float64), ("tau_s", np.float64)]
)
STATE_DTYPE: Final = np.dtype(
    [
        ("soc", np.float64),
        ("v1", np.float64),
        ("h", np.float64),
        ("p00", np.float64),
        ("p01", np.float64),
        ("p02", np.float64),
        ("p11", np.float64),
        ("p12", np.float64),
        ("p22", np.float64),
        ("ocv", np.float64),
        ("v_last", np.float64),
        ("age_s", np.float64),
        ("innov", np.float64),
        ("flags", np.uint32),
        ("count", np.uint8, (8,)),
        ("pad", np.uint32),
    ]
)
_SUMMARY_FLOATS: Final = (
    "soc_min",
    "soc_mean",
    "soc_max",
    "v_min",
    "v_mean",
    "v_max",
    "v_spread",
    "v_median",
    "v_sigma",
    "t_min",
    "t_max",
    "target_soc",
    "target_v",
)
_SUMMARY_INTS: Final = (
    "soc_min_idx",
    "soc_max_idx",
    "v_min_idx",
    "v_max_idx",
    "t_min_idx",
    "t_max_idx",
    "n_plausible",
    "n_predict_only",
    "n_faulted",
    "n_bleeding",
)
SUMMARY_DTYPE: Final = np.dtype(
    [(name, np.float64) for name in _SUMMARY_FLOATS] + [(name, np.int64) for name in _SUMMARY_INTS]
)
# The kernel keeps each state field as its own array (two cells per SIMD instruction); these are
# the float fields in the row order of the state block, the rest are flags and count.
STATE_FLOATS: Final = tuple(
    name for name in STATE_DTYPE.names or () if STATE_DTYPE[name] == np.float64
)
COEF_ROWS: Final = ("a", "b", "inv_q", "g", "r0")

assert_layout("gg_cell_param_t", PARAM_DTYPE)
assert_layout("gg_cells_summary_t", SUMMARY_DTYPE)


def cell_params(
    n: int,
    capacity_ah: npt.ArrayLike,
    r0: npt.ArrayLike,
    r1: npt.ArrayLike,
    tau_s: npt.ArrayLike,
) -> npt.NDArray[np.void]:
    """A gg_cell_param_t array of ``n`` cells; each argument is a scalar or ``n`` values."""
    out = np.zeros(n, dtype=PARAM_DTYPE)
    for name, value in (("capacity_ah", capacity_ah), ("r0", r0), ("r1", r1), ("tau_s", tau_s)):
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim > 1 or (arr.ndim == 1 and len(arr) != n):
            raise NativeError(f"{name} must be a scalar or {n} values, got shape {arr.shape}")
        out[name] = arr
    return out


@dataclass(frozen=True)
class StringSummary:
    """String statistics of the last cycle (indices are cell indices, -1 when undefined)."""

    soc_min: float
    soc_mean: float
    soc_max: float
    v_min: float
    v_mean: float
    v_max: float
    v_spread: float
    v_median: float
    v_sigma: float
    t_min: float
    t_max: float
    target_soc: float
    target_v: float
    soc_min_idx: int
    soc_max_idx: int
    v_min_idx: int
    v_max_idx: int
    t_min_idx: int
    t_max_idx: int
    n_plausible: int
    n_predict_only: int
    n_faulted: int
    n_bleeding: int

    @classmethod
    def from_struct(cls, rec: npt.NDArray[np.void]) -> StringSummary:
        r = rec.reshape(-1)[0]
        values: dict[str, Any] = {name: float(r[name]) for name in _SUMMARY_FLOATS}
        values.update((name, int(r[name])) for name in _SUMMARY_INTS)
        return cls(**values)


__all__ = [
    "COEF_ROWS",
    "PARAM_DTYPE",
    "STATE_DTYPE",
    "STATE_FLOATS",
    "SUMMARY_DTYPE",
    "StringSummary",
    "cell_params",
]
