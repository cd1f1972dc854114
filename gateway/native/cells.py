"""Per-cell SOC, fault flags, string statistics and balancing plan (C kernel native/cells.c).

One :class:`CellEstimator` owns every array of one string (parameters, EKF states, outputs) and
calls the kernel once per measurement cycle; nothing is allocated per call. The maths, the flag
bits and the interlocks are documented in native/gridgate.h (section "cells"); the numpy
reference is gateway/native/cells_ref.py.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.core.errors import ConfigError, ConfigIssue, NativeError
from gateway.core.model import FloatArray, QualityArray
from gateway.native.ffi import assert_layout, check, ffi, lib, ptr
from gateway.native.ocv import LFP_HYSTERESIS_GAMMA, Chemistry

# What CellEstimator.update hands to the kernel without the general checks of ptr().
_F64: Final = np.dtype(np.float64)
_U8: Final = np.dtype(np.uint8)
_DOUBLES: Final = ffi.typeof("double[]")
_BYTES: Final = ffi.typeof("uint8_t[]")
_STEP_FAILED: Final = "gg_cells_step (dt must be finite and > 0)"

U32Array = npt.NDArray[np.uint32]
BoolArray = npt.NDArray[np.bool_]


class CellFlag(IntFlag):
    """Bits of a cell's ``flags`` (gridgate.h GG_CELL_*)."""

    OV = 1 << 0
    UV = 1 << 1
    OT = 1 << 2
    UT = 1 << 3
    DEVIATION = 1 << 4
    IMPLAUSIBLE = 1 << 5
    V_BAD = 1 << 8
    T_BAD = 1 << 9
    STALE = 1 << 10
    NO_CURRENT = 1 << 11
    PREDICT_ONLY = 1 << 12
    BLEED = 1 << 16


# A cell with any of these is faulted: counted, not a balancing target, interlocks its board.
FAULTS: Final = (
    CellFlag.OV
    | CellFlag.UV
    | CellFlag.OT
    | CellFlag.UT
    | CellFlag.DEVIATION
    | CellFlag.IMPLAUSIBLE
    | CellFlag.STALE
)


class BoardInterlock(IntFlag):
    """Why a board may not bleed (gridgate.h GG_BAL_IL_*)."""

    OFF = 1 << 0
    LOW_V = 1 << 1
    HOT = 1 << 2
    STALE = 1 << 3
    FAULT = 1 << 4
    NO_TARGET = 1 << 5


class BalanceMode(IntEnum):
    OFF = 0
    SOC = 1
    VOLTAGE = 2


def _check_constants() -> None:
    """The Python twins of the C constants, compared once at import."""
    pairs = [(f"GG_CELL_{f.name}", int(f)) for f in CellFlag]
    pairs += [(f"GG_BAL_IL_{f.name}", int(f)) for f in BoardInterlock]
    pairs += [(f"GG_BAL_{m.name}", int(m)) for m in BalanceMode]
    pairs.append(("GG_CELL_FAULTS", int(FAULTS)))
    wrong = [name for name, value in pairs if getattr(lib, name) != value]
    if wrong:
        raise NativeError(f"cells constants differ between C and Python: {wrong}")


_check_constants()

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
_CFG_FLOATS: Final = (
    "q_soc",
    "q_v1",
    "q_h",
    "r_v",
    "hyst_gamma",
    "v_lo",
    "v_hi",
    "jump_v",
    "ov_set",
    "ov_clear",
    "uv_set",
    "uv_clear",
    "ot_set",
    "ot_clear",
    "ut_set",
    "ut_clear",
    "dev_k_set",
    "dev_k_clear",
    "dev_sigma_min",
    "stale_s",
    "bal_bleed_ohm",
    "bal_soc_window",
    "bal_v_window",
    "bal_min_v",
    "bal_max_temp",
    "bal_max_age_s",
)
_CFG_INTS: Final = (
    "debounce_set",
    "debounce_clear",
    "bal_mode",
    "cells_per_board",
    "bal_max_per_board",
)
CFG_DTYPE: Final = np.dtype(
    [(name, np.float64) for name in _CFG_FLOATS]
    + [(name, np.int32) for name in _CFG_INTS]
    + [("pad", np.int32)]
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
_STATE_FLOATS: Final = tuple(
    name for name in STATE_DTYPE.names or () if STATE_DTYPE[name] == np.float64
)
_COEF_ROWS: Final = ("a", "b", "inv_q", "g", "r0")

assert_layout("gg_cell_param_t", PARAM_DTYPE)
assert_layout("gg_cells_cfg_t", CFG_DTYPE)
assert_layout("gg_cells_summary_t", SUMMARY_DTYPE)

MAX_CELLS_PER_BOARD: Final = 32
MAX_DEBOUNCE: Final = 255


@dataclass(frozen=True)
class CellsConfig:
    """Noise, fault thresholds and balancing policy of one string (see gridgate.h, cells).

    Defaults suit an NMC string read at 10 Hz; :meth:`for_chemistry` gives LFP's. Voltages in V,
    temperatures in degC, times in s, noise as variances (process noise per second).
    """

    q_soc: float = 1e-8
    q_v1: float = 1e-7
    r_v: float = 2.5e-5  # (5 mV)^2: AFE noise plus model error
    q_h: float = 0.0  # the hysteresis state follows the current; no noise of its own
    hyst_gamma: float = 0.0  # NMC: a few mV of hysteresis, ignored (see ocv.py)
    v_lo: float = 0.5  # below: open sense wire
    v_hi: float = 5.0  # above: beyond any lithium cell
    jump_v: float = 0.5  # innovation a current step cannot explain
    ov_set: float = 4.25
    ov_clear: float = 4.20
    uv_set: float = 2.80
    uv_clear: float = 3.00
    ot_set: float = 55.0
    ot_clear: float = 50.0
    ut_set: float = -10.0
    ut_clear: float = -5.0
    dev_k_set: float = 6.0
    dev_k_clear: float = 4.0
    dev_sigma_min: float = 0.005
    stale_s: float = 2.0
    bal_bleed_ohm: float = 33.0
    bal_soc_window: float = 0.01
    bal_v_window: float = 0.01
    bal_min_v: float = 3.3
    bal_max_temp: float = 50.0
    bal_max_age_s: float = 1.0
    debounce_set: int = 3
    debounce_clear: int = 5
    bal_mode: BalanceMode = BalanceMode.SOC
    cells_per_board: int = 14
    bal_max_per_board: int = 4

    @classmethod
    def for_chemistry(cls, chemistry: Chemistry, **overrides: Any) -> CellsConfig:
        """Thresholds and measurement noise of ``chemistry``; keywords override any field."""
        if Chemistry(chemistry) is Chemistry.LFP:
            # The hysteresis is modelled (ocv.hysteresis_table), so r_v covers the AFE and the
            # 1RC-for-2RC model error only. On the plateau 1 mV is 1-2 % of SOC: the
            # polarisation may not wander on its own (small q_v1), or it absorbs the OCV offset
            # that tells the SOC.
            base = cls(
                r_v=1e-4,
                q_v1=1e-8,
                hyst_gamma=LFP_HYSTERESIS_GAMMA,
                ov_set=3.65,
                ov_clear=3.60,
                uv_set=2.50,
                uv_clear=2.70,
                bal_min_v=3.1,
            )
        else:
            base = cls()
        return dataclasses.replace(base, **overrides)

    def issues(self, where: str = "cells") -> list[ConfigIssue]:
        """Every problem of this config, as config issues under the key path ``where``."""
        out: list[ConfigIssue] = []

        def bad(field: str, reason: str) -> None:
            out.append(ConfigIssue("<cells>", f"{where}.{field}", reason))

        for name in _CFG_FLOATS:
            if math.isnan(getattr(self, name)):
                bad(name, "must be a number, not NaN")
        for name in ("q_soc", "q_v1", "q_h", "hyst_gamma", "bal_soc_window", "bal_v_window"):
            if not getattr(self, name) >= 0.0 or math.isinf(getattr(self, name)):
                bad(name, "must be finite and >= 0")
        for name in ("r_v", "dev_sigma_min", "bal_bleed_ohm"):
            if not (getattr(self, name) > 0.0 and math.isfinite(getattr(self, name))):
                bad(name, "must be finite and > 0")
        if not (0.0 < self.v_lo < self.v_hi and math.isfinite(self.v_hi)):
            bad("v_hi", "0 < v_lo < v_hi, both finite")
        if not self.jump_v > 0.0:
            bad("jump_v", "must be > 0 (inf disables the jump check)")
        for set_, clear, above in (
            ("ov_set", "ov_clear", True),
            ("uv_set", "uv_clear", False),
            ("ot_set", "ot_clear", True),
            ("ut_set", "ut_clear", False),
        ):
            s, c = getattr(self, set_), getattr(self, clear)
            if not (c <= s if above else c >= s):
                bad(clear, f"must lie inside {set_} ({'<=' if above else '>='} {s})")
        if not 0.0 <= self.dev_k_clear <= self.dev_k_set:
            bad("dev_k_clear", "0 <= dev_k_clear <= dev_k_set")
        for name in ("stale_s", "bal_max_age_s"):
            if not getattr(self, name) >= 0.0:
                bad(name, "must be >= 0")
        for name in ("debounce_set", "debounce_clear"):
            if not 1 <= getattr(self, name) <= MAX_DEBOUNCE:
                bad(name, f"must be 1..{MAX_DEBOUNCE} cycles")
        if self.bal_mode not in tuple(BalanceMode):
            bad("bal_mode", f"must be one of {[m.name.lower() for m in BalanceMode]}")
        if not 1 <= self.cells_per_board <= MAX_CELLS_PER_BOARD:
            bad("cells_per_board", f"must be 1..{MAX_CELLS_PER_BOARD}")
        elif not 0 <= self.bal_max_per_board <= self.cells_per_board:
            bad("bal_max_per_board", "must be 0..cells_per_board")
        return out

    def to_struct(self) -> npt.NDArray[np.void]:
        """The one-element gg_cells_cfg_t array the kernel reads; ConfigError when invalid."""
        problems = self.issues()
        if problems:
            raise ConfigError(problems)
        rec = np.zeros(1, dtype=CFG_DTYPE)
        for name in _CFG_FLOATS + _CFG_INTS:
            rec[name] = getattr(self, name)
        return rec


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


def _read_only(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    view = arr.view()
    view.flags.writeable = False
    return view


class CellEstimator:
    """EKF, faults, statistics and balancing plan of one string of ``n`` cells.

    ``params`` is a :data:`PARAM_DTYPE` array (see :func:`cell_params`), ``ocv`` the uniform OCV
    table (gateway/native/ocv.py) and ``hyst`` the hysteresis half gap M on the same grid
    (:func:`~gateway.native.ocv.hysteresis_table`; None: no hysteresis). Output arrays are
    read-only views of the owned buffers: they change at the next :meth:`update`, so copy what
    must outlive it.
    """

    def __init__(
        self,
        params: npt.NDArray[np.void],
        ocv: npt.ArrayLike,
        config: CellsConfig,
        soc0: npt.ArrayLike = 0.5,
        *,
        hyst: npt.ArrayLike | None = None,
        p0_soc: float = 0.04,
        p0_v1: float = 1e-4,
        p0_h: float = 0.0,
    ) -> None:
        if params.dtype != PARAM_DTYPE or params.ndim != 1 or len(params) == 0:
            raise NativeError(f"params must be a non-empty 1-D {PARAM_DTYPE} array")
        n = len(params)
        self._n = n
        self._shape = (n,)
        self._config = config
        self._params = np.ascontiguousarray(params).copy()
        self._ocv = np.array(ocv, dtype=np.float64, ndmin=1)
        self._hyst = (
            np.zeros_like(self._ocv) if hyst is None else np.array(hyst, dtype=np.float64, ndmin=1)
        )
        if self._hyst.shape != self._ocv.shape:
            raise NativeError(
                f"hyst needs one value per OCV point ({len(self._ocv)}), got {self._hyst.shape}"
            )
        self._cfg = config.to_struct()
        self._floats = np.zeros((len(_STATE_FLOATS), n), dtype=np.float64)
        self._flags = np.zeros(n, dtype=np.uint32)
        self._count = np.zeros((n, 8), dtype=np.uint8)
        self._coef = np.zeros((len(_COEF_ROWS), n), dtype=np.float64)
        self._scratch = np.zeros(n, dtype=np.float64)
        self._excess_ah = np.zeros(n, dtype=np.float64)
        self._bleed_s = np.zeros(n, dtype=np.float64)
        self._n_boards = -(-n // config.cells_per_board)
        self._board_mask = np.zeros(self._n_boards, dtype=np.uint32)
        self._board_interlock = np.zeros(self._n_boards, dtype=np.uint32)
        self._summary = np.zeros(1, dtype=SUMMARY_DTYPE)
        # The context holds raw pointers into the arrays above; the cdata that own those
        # pointers are kept for the life of this object, and the arrays are never replaced.
        self._keep_rows: list[Any] = []
        self._keep = [
            ptr("double", self._ocv),
            ptr("double", self._hyst),
            ptr("gg_cell_param_t", self._params, dtype=PARAM_DTYPE),
            ptr("gg_cells_cfg_t", self._cfg, dtype=CFG_DTYPE),
            self._state_arrays(),
            self._coef_arrays(),
            ptr("double", self._scratch, writable=True),
            ptr("double", self._excess_ah, writable=True),
            ptr("double", self._bleed_s, writable=True),
            ptr("uint32_t", self._board_mask, writable=True),
            ptr("uint32_t", self._board_interlock, writable=True),
            ptr("gg_cells_summary_t", self._summary, dtype=SUMMARY_DTYPE, writable=True),
        ]
        ctx = ffi.new("gg_cells_ctx_t *")
        ctx.n = n
        ctx.n_ocv = len(self._ocv)
        (
            ctx.ocv,
            ctx.hyst,
            ctx.param,
            ctx.cfg,
            ctx.state,
            ctx.coef,
            ctx.scratch,
            ctx.excess_ah,
            ctx.bleed_s,
            ctx.board_mask,
            ctx.board_interlock,
            ctx.summary,
        ) = self._keep
        ctx.coef_dt = math.nan
        ctx.hint_median = ctx.hint_mad = ctx.hint_mean = math.nan
        self._ctx = ctx
        check(
            lib.gg_cells_check(ctx),
            "gg_cells_check (OCV table of >= 2 positive values, hysteresis >= 0; capacity, "
            "tau > 0; r0, r1 >= 0)",
        )
        self.reset(soc0, p0_soc=p0_soc, p0_v1=p0_v1, p0_h=p0_h)

    def _state_arrays(self) -> Any:
        """A gg_cell_state_t pointing into the state arrays; it keeps them alive."""
        st = ffi.new("gg_cell_state_t *")
        keep = [ptr("double", row, writable=True) for row in self._floats]
        for name, p in zip(_STATE_FLOATS, keep, strict=True):
            setattr(st, name, p)
        keep.append(ptr("uint32_t", self._flags, writable=True))
        keep.append(ptr("uint8_t", self._count, writable=True))
        st.flags, st.count = keep[-2], keep[-1]
        self._keep_rows += keep
        return st

    def _coef_arrays(self) -> Any:
        """A gg_cell_coef_t pointing into the coefficient cache; it keeps the rows alive."""
        c = ffi.new("gg_cell_coef_t *")
        keep = [ptr("double", row, writable=True) for row in self._coef]
        for name, p in zip(_COEF_ROWS, keep, strict=True):
            setattr(c, name, p)
        self._keep_rows += keep
        return c

    @property
    def n(self) -> int:
        return self._n

    @property
    def n_boards(self) -> int:
        return self._n_boards

    @property
    def config(self) -> CellsConfig:
        return self._config

    @property
    def ocv(self) -> FloatArray:
        return _read_only(self._ocv)

    @property
    def hyst(self) -> FloatArray:
        return _read_only(self._hyst)

    def reset(
        self,
        soc0: npt.ArrayLike,
        *,
        p0_soc: float = 0.04,
        p0_v1: float = 1e-4,
        p0_h: float = 0.0,
    ) -> None:
        """Restart every cell at ``soc0`` (scalar or per cell) with covariance diag(p0).

        The hysteresis state starts at 0, the mean branch: unknown after a rest, and set by the
        current within a few % of SOC moved (1 / hyst_gamma), so its default variance is 0.
        """
        s0 = np.broadcast_to(np.asarray(soc0, dtype=np.float64), (self._n,))
        check(
            lib.gg_cells_reset(self._ctx, ptr("double", s0), p0_soc, p0_v1, p0_h),
            "gg_cells_reset (soc0 finite, p0 finite and >= 0)",
        )

    def update(
        self,
        dt_s: float,
        current_a: float,
        voltage: FloatArray,
        v_quality: QualityArray,
        temperature: FloatArray,
        t_quality: QualityArray,
    ) -> int:
        """One cycle for every cell; returns the number of faulted cells.

        ``current_a`` is the pack current (positive = discharge), NaN when unknown. Arrays are
        float64 / uint8 with one entry per cell. A steady ``dt_s`` (the nominal period) spares
        the kernel one exp per cell.
        """
        shape = self._shape
        # The arrays a rack read produces (right dtype, shape and layout) go straight to the
        # kernel: at 10 Hz on 1,400 cells the general checks of ptr() cost a twentieth of the
        # update. Anything else takes the checked path below, which copies or explains.
        if (
            voltage.dtype is _F64
            and temperature.dtype is _F64
            and v_quality.dtype is _U8
            and t_quality.dtype is _U8
            and voltage.shape == shape
            and v_quality.shape == shape
            and temperature.shape == shape
            and t_quality.shape == shape
            and voltage.flags.c_contiguous
            and v_quality.flags.c_contiguous
            and temperature.flags.c_contiguous
            and t_quality.flags.c_contiguous
        ):
            from_buffer = ffi.from_buffer
            status = lib.gg_cells_step(
                self._ctx,
                dt_s,
                current_a,
                from_buffer(_DOUBLES, voltage),
                from_buffer(_BYTES, v_quality),
                from_buffer(_DOUBLES, temperature),
                from_buffer(_BYTES, t_quality),
            )
            return check(status, _STEP_FAILED)
        n = self._n
        if voltage.shape != shape or v_quality.shape != shape:
            raise NativeError(f"voltage and v_quality must have shape ({n},)")
        if temperature.shape != shape or t_quality.shape != shape:
            raise NativeError(f"temperature and t_quality must have shape ({n},)")
        status = lib.gg_cells_step(
            self._ctx,
            dt_s,
            current_a,
            ptr("double", voltage),
            ptr("uint8_t", v_quality),
            ptr("double", temperature),
            ptr("uint8_t", t_quality),
        )
        return check(status, _STEP_FAILED)

    @property
    def state(self) -> npt.NDArray[np.void]:
        """Per-cell EKF state, flags and debounce counters (:data:`STATE_DTYPE`).

        A copy gathered from the kernel's per-field arrays: it does not follow later updates.
        """
        out = np.zeros(self._n, dtype=STATE_DTYPE)
        for name, row in zip(_STATE_FLOATS, self._floats, strict=True):
            out[name] = row
        out["flags"] = self._flags
        out["count"] = self._count
        return _read_only(out)

    @property
    def soc(self) -> FloatArray:
        return _read_only(self._floats[_STATE_FLOATS.index("soc")])

    @property
    def flags(self) -> U32Array:
        """Per-cell :class:`CellFlag` bits of the last cycle."""
        return _read_only(self._flags)

    @property
    def excess_ah(self) -> FloatArray:
        """Per-cell charge to bleed to reach the balancing target (Ah)."""
        return _read_only(self._excess_ah)

    @property
    def bleed_s(self) -> FloatArray:
        """Per-cell time that charge takes through the bleed resistor (s)."""
        return _read_only(self._bleed_s)

    @property
    def bleeding(self) -> BoolArray:
        """Per-cell: the plan bleeds it this cycle."""
        out: BoolArray = (self._flags & CellFlag.BLEED) != 0
        return out

    @property
    def board_mask(self) -> U32Array:
        """Per-board bleed mask, bit j = cell j of the board."""
        return _read_only(self._board_mask)

    @property
    def board_interlock(self) -> U32Array:
        """Per-board :class:`BoardInterlock` bits; any bit means the board's mask is 0."""
        return _read_only(self._board_interlock)

    def summary(self) -> StringSummary:
        """String statistics of the last cycle."""
        return StringSummary.from_struct(self._summary)


__all__ = [
    "CFG_DTYPE",
    "FAULTS",
    "PARAM_DTYPE",
    "STATE_DTYPE",
    "SUMMARY_DTYPE",
    "BalanceMode",
    "BoardInterlock",
    "CellEstimator",
    "CellFlag",
    "CellsConfig",
    "StringSummary",
    "cell_params",
]
