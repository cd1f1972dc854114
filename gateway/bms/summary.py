"""The rack's window summary: what an operator looks at once a minute.

The state of charge, voltage and temperature figures are those of the window's last cycle (the
string now, with the cell that holds each extreme); the window adds the widest voltage spread
seen, the current's range, cycles run and missed, and the cellbus errors of each board counted in
the window (only boards that had any, keyed ``line/address``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from drivers.cellbus.errors import ErrorKind
from drivers.cellbus.rack import RackSample
from gateway.bms.layout import cell_id
from gateway.native.cells import StringSummary


def _num(x: float, digits: int) -> float | None:
    return round(x, digits) if math.isfinite(x) else None


def _cell(i: int) -> str | None:
    return cell_id(i) if i >= 0 else None


def string_body(s: StringSummary) -> dict[str, Any]:
    """The string statistics of one cycle as JSON-able figures with cell ids."""
    return {
        "soc": {
            "min": _num(s.soc_min, 4),
            "min_cell": _cell(s.soc_min_idx),
            "mean": _num(s.soc_mean, 4),
            "max": _num(s.soc_max, 4),
            "max_cell": _cell(s.soc_max_idx),
        },
        "voltage": {
            "min": _num(s.v_min, 4),
            "min_cell": _cell(s.v_min_idx),
            "mean": _num(s.v_mean, 4),
            "max": _num(s.v_max, 4),
            "max_cell": _cell(s.v_max_idx),
            "spread": _num(s.v_spread, 4),
        },
        "temperature": {
            "min": _num(s.t_min, 1),
            "min_cell": _cell(s.t_min_idx),
            "max": _num(s.t_max, 1),
            "max_cell": _cell(s.t_max_idx),
        },
        "faulted": s.n_faulted,
        "bleeding": s.n_bleeding,
    }


class RackWindow:
    def __init__(self, boards: tuple[str, ...], mode: str) -> None:
        self.boards = boards
        self.mode = mode
        self._errors0: np.ndarray[Any, np.dtype[np.uint32]] | None = None
        self._reset()
        self.last: StringSummary | None = None
        self.last_sample: RackSample | None = None

    def _reset(self) -> None:
        self.cycles = 0
        self.missed = 0
        self.spread_max = -math.inf
        self.i_min = math.inf
        self.i_max = -math.inf
        self.i_sum = 0.0
        self.i_n = 0

    def add(self, sample: RackSample, summary: StringSummary) -> None:
        if self._errors0 is None:
            self._errors0 = sample.errors - sample.errors  # zero: count from the first cycle
        self.cycles += 1
        self.last, self.last_sample = summary, sample
        if math.isfinite(summary.v_spread):
            self.spread_max = max(self.spread_max, summary.v_spread)
        i = sample.current_a
        if math.isfinite(i):
            self.i_min, self.i_max = min(self.i_min, i), max(self.i_max, i)
            self.i_sum += i
            self.i_n += 1

    def missed_cycle(self) -> None:
        self.missed += 1

    def close(self, now: float, silent: list[str]) -> dict[str, Any] | None:
        """The window's body, or None when no cycle completed in it."""
        s, sample = self.last, self.last_sample
        if s is None or sample is None or self.cycles == 0:
            self._reset()
            return None
        body: dict[str, Any] = {"device": "rack", **string_body(s)}
        body["voltage"]["spread_max"] = _num(self.spread_max, 4)
        body["current_a"] = {
            "min": _num(self.i_min, 2),
            "mean": _num(self.i_sum / self.i_n, 2) if self.i_n else None,
            "max": _num(self.i_max, 2),
        }
        body["balancing"] = {
            "mode": self.mode,
            "planned": s.n_bleeding,
            "applied": int(sum(int(m).bit_count() for m in sample.balancing)),
        }
        body["cycles"] = self.cycles
        body["cycles_missed"] = self.missed
        body["boards_silent"] = silent
        assert self._errors0 is not None
        delta = sample.errors.astype(np.int64) - self._errors0
        body["board_errors"] = {
            self.boards[b]: {k.name.lower(): int(delta[b, k]) for k in ErrorKind if delta[b, k]}
            for b in np.flatnonzero(delta.sum(axis=1)).tolist()
        }
        self._errors0 = sample.errors.copy()
        self._reset()
        return body
