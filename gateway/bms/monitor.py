"""One string, one cycle: the cells kernel over a reading, and the cell alarms its flags raise.

The daemon and ``gridgate replay bms`` both go through :class:`StringMonitor`, so a parameter set
tried on a recording behaves exactly as it would in the rack.

A board that stops answering makes every one of its cells stale: that is one board alarm (from
:mod:`gateway.bms.board_alarms`), so cell alarms raised while a cell's board gives no good
reading are folded into it, and so are their clears; a cell that goes bad on a board that still
answers alarms as before.

The estimator starts where the first reading puts it: each cell's SOC read off the OCV table at its
first plausible voltage (under load that is off by the IR drop, which the EKF then corrects),
unless the caller gives an initial SOC (replay does, to test convergence).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from gateway.bms.config import BmsConfig
from gateway.bms.layout import StringLayout, cell_id
from gateway.core.alarms import AlarmEvent
from gateway.core.model import FloatArray, Quality, QualityArray
from gateway.native.cells import FAULTS, CellEstimator, CellFlag, StringSummary, cell_params
from gateway.native.ocv import DEFAULT_POINTS, Chemistry, hysteresis_table, ocv_table, pchip

_ALARM_BITS = tuple(f for f in CellFlag if f & FAULTS)
# Which reading a raised flag is about: the technician wants the value that tripped it.
_TEMP_BITS = CellFlag.OT | CellFlag.UT


def ocv_curve(cfg: BmsConfig) -> FloatArray:
    """The kernel's uniform OCV table: the configured curve if any, else the chemistry's."""
    c = cfg.cell
    if c.ocv_soc is None or c.ocv_v is None:
        return ocv_table(Chemistry(cfg.chemistry))
    grid = np.linspace(0.0, 1.0, DEFAULT_POINTS)
    return pchip(np.array(c.ocv_soc), np.array(c.ocv_v), grid)


def soc_from_ocv(table: FloatArray, volts: FloatArray) -> FloatArray:
    """SOC whose OCV is ``volts`` on the uniform ``table`` (clamped to 0..1; NaN stays NaN)."""
    grid = np.linspace(0.0, 1.0, len(table))
    out: FloatArray = np.interp(volts, table, grid)
    out[~np.isfinite(volts)] = np.nan
    return out


class StringMonitor:
    def __init__(self, cfg: BmsConfig, layout: StringLayout, soc0: float | None = None) -> None:
        self.layout = layout
        c = cfg.cell
        self.table = ocv_curve(cfg)
        params = cell_params(layout.n_cells, c.capacity_ah, c.r0_ohm, c.r1_ohm, c.tau_s)
        # The branch gap is the chemistry's typical one: the config gives the mean branch only.
        self.estimator = CellEstimator(
            params,
            self.table,
            cfg.cells_config(),
            0.5 if soc0 is None else soc0,
            hyst=hysteresis_table(Chemistry(cfg.chemistry), len(self.table)),
        )
        self._started = soc0 is not None
        self._flags = np.zeros(layout.n_cells, dtype=np.uint32)
        # Alarm bits raised while the cell's board was out, reported by the board alarm instead.
        self._folded = np.zeros(layout.n_cells, dtype=np.uint32)
        names = {name: i for i, name in enumerate(layout.boards)}
        self._board = np.array(
            [names[layout.board_of(c)] for c in range(layout.n_cells)], dtype=np.intp
        )
        self.cycles = 0
        self.raised = 0
        self.cleared = 0

    def _start(self, cell_v: FloatArray, cell_q: QualityArray) -> bool:
        good = (cell_q == Quality.GOOD) & np.isfinite(cell_v)
        if not good.any():
            return False
        soc = soc_from_ocv(self.table, np.where(good, cell_v, np.nan))
        fill = float(np.nanmedian(soc))
        self.estimator.reset(np.where(np.isfinite(soc), soc, fill))
        return True

    def step(
        self,
        ts: float,
        dt: float,
        current_a: float,
        cell_v: FloatArray,
        cell_q: QualityArray,
        temp_c: FloatArray,
        temp_q: QualityArray,
    ) -> list[AlarmEvent]:
        """Run the kernel on one reading (temperatures per sensor); the alarm transitions."""
        t, tq = self.layout.cell_temperatures(temp_c, temp_q)
        return self.step_cells(ts, dt, current_a, cell_v, cell_q, t, tq)

    def step_cells(
        self,
        ts: float,
        dt: float,
        current_a: float,
        cell_v: FloatArray,
        cell_q: QualityArray,
        t: FloatArray,
        tq: QualityArray,
    ) -> list[AlarmEvent]:
        """As :meth:`step` with one temperature per cell."""
        if not self._started:
            self._started = self._start(cell_v, cell_q)
        self.estimator.update(dt, current_a, cell_v, cell_q, t, tq)
        self.cycles += 1
        flags = self.estimator.flags
        changed = (flags ^ self._flags) & np.uint32(int(FAULTS))
        events: list[AlarmEvent] = []
        if changed.any():
            changed = self._unfolded(changed, flags, cell_q)
            for cell in np.flatnonzero(changed).tolist():
                events += self._events(ts, cell, int(flags[cell]), int(changed[cell]), cell_v, t)
        self._flags[:] = flags
        return events

    def _unfolded(
        self, changed: npt.NDArray[np.uint32], flags: npt.NDArray[np.uint32], cell_q: QualityArray
    ) -> npt.NDArray[np.uint32]:
        """The changed bits to report: raises on a board with no good cell this cycle (a board
        outage) are folded into the board alarm, and so are the clears of folded raises."""
        answering = np.bincount(
            self._board, weights=cell_q == Quality.GOOD, minlength=len(self.layout.boards)
        )
        out = answering[self._board] == 0
        fold = np.where(out, changed & flags, np.uint32(0)).astype(np.uint32)
        cleared = changed & ~flags
        quiet = cleared & self._folded
        self._folded = (self._folded | fold) & ~cleared
        report: npt.NDArray[np.uint32] = changed & ~(fold | quiet)
        return report

    def _events(
        self, ts: float, cell: int, flags: int, changed: int, v: FloatArray, t: FloatArray
    ) -> list[AlarmEvent]:
        out = []
        for bit in _ALARM_BITS:
            if not changed & bit:
                continue
            on = bool(flags & bit)
            value = float(t[cell] if bit & _TEMP_BITS else v[cell])
            out.append(
                AlarmEvent(
                    f"cell_{(bit.name or 'fault').lower()}",
                    "raised" if on else "cleared",
                    self.layout.board_of(cell),
                    ts,
                    point=cell_id(cell),
                    value=value if math.isfinite(value) else None,
                )
            )
            if on:
                self.raised += 1
            else:
                self.cleared += 1
        return out

    def summary(self) -> StringSummary:
        return self.estimator.summary()
