"""Per-cell SOC, fault flags, string statistics and balancing plan (C kernel native/cells.c).

One :class:`CellEstimator` owns every array of one string (parameters, EKF states, outputs) and
calls the kernel once per measurement cycle; nothing is allocated per call. The maths, the flag
bits and the interlocks are documented in native/gridgate.h (section "cells"); the numpy
reference is gateway/native/cells_ref.py.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.core.errors import NativeError
from gateway.core.model import FloatArray, QualityArray
from gateway.native.cells_config import CFG_DTYPE, CellsConfig
from gateway.native.cells_flags import FAULTS, BalanceMode, BoardInterlock, CellFlag
from gateway.native.cells_types import (
    COEF_ROWS,
    PARAM_DTYPE,
    STATE_DTYPE,
    STATE_FLOATS,
    SUMMARY_DTYPE,
    StringSummary,
    cell_params,
)
from gateway.native.ffi import check, ffi, lib, ptr

# What CellEstimator.update hands to the kernel without the general checks of ptr().
_F64: Final = np.dtype(np.float64)
_U8: Final = np.dtype(np.uint8)
_DOUBLES: Final = ffi.typeof("double[]")
_BYTES: Final = ffi.typeof("uint8_t[]")
_STEP_FAILED: Final = "gg_cells_step (dt must be finite and > 0)"

U32Array = npt.NDArray[np.uint32]
BoolArray = npt.NDArray[np.bool_]


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
        self._floats = np.zeros((len(STATE_FLOATS), n), dtype=np.float64)
        self._flags = np.zeros(n, dtype=np.uint32)
        self._count = np.zeros((n, 8), dtype=np.uint8)
        self._coef = np.zeros((len(COEF_ROWS), n), dtype=np.float64)
        self._scratch = np.zeros(n, dtype=np.float64)
        self._excess_ah = np.zeros(n, dtype=np.float64)
        self._bleed_s = np.zeros(n, dtype=np.float64)
        self._n_boards = -(-n // config.cells_per_board)
        self._board_mask = np.zeros(self._n_boards, dtype=np.uint32)
        self._board_interlock = np.zeros(self._n_boards, dtype=np.uint32)
        self._summary = np.zeros(1, dtype=SUMMARY_DTYPE)
        self._ctx = self._new_context()
        check(
            lib.gg_cells_check(self._ctx),
            "gg_cells_check (OCV table of >= 2 positive values, hysteresis >= 0; capacity, "
            "tau > 0; r0, r1 >= 0)",
        )
        self.reset(soc0, p0_soc=p0_soc, p0_v1=p0_v1, p0_h=p0_h)

    def _new_context(self) -> Any:
        """The gg_cells_ctx_t that points the kernel at this object's arrays."""
        # The context holds raw pointers into the arrays __init__ allocated; the cdata that own
        # those pointers are kept for the life of this object, and the arrays are never replaced.
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
        ctx.n = self._n
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
        return ctx

    def _state_arrays(self) -> Any:
        """A gg_cell_state_t pointing into the state arrays; it keeps them alive."""
        st = ffi.new("gg_cell_state_t *")
        keep = [ptr("double", row, writable=True) for row in self._floats]
        for name, p in zip(STATE_FLOATS, keep, strict=True):
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
        for name, p in zip(COEF_ROWS, keep, strict=True):
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
        for name, row in zip(STATE_FLOATS, self._floats, strict=True):
            out[name] = row
        out["flags"] = self._flags
        out["count"] = self._count
        return _read_only(out)

    @property
    def soc(self) -> FloatArray:
        return _read_only(self._floats[STATE_FLOATS.index("soc")])

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


# The cells kernel's public names stay importable from here, where the BMS, tests and benches
# have always found them; they are defined in cells_flags, cells_config and cells_types.
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
