"""Where each string cell sits: line, board, channel, and which temperature sensor it shares.

String order is the driver's: lines as configured, boards by address, cells by channel. A board
has fewer sensors than cells, so each cell takes the sensor nearest its position on the board
(sensors spread evenly along it), which is what the kernel's per-cell OT/UT flags and the hot
interlock need.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drivers.cellbus.config import RackConfig
from gateway.core.model import FloatArray, Quality, QualityArray

IntArray = npt.NDArray[np.intp]


class StringLayout:
    def __init__(self, rack: RackConfig) -> None:
        cells: list[tuple[str, int, int]] = []
        boards: list[str] = []
        temp_idx: list[int] = []
        t0 = 0
        for line in rack.lines:
            for b in line.boards:
                boards.append(f"{line.name}/{b.address}")
                for ch in range(b.n_cells):
                    cells.append((line.name, b.address, ch))
                    temp_idx.append(t0 + ch * b.n_temps // b.n_cells if b.n_temps else -1)
                t0 += b.n_temps
        self.n_cells = len(cells)
        self.n_temps = t0
        self.boards = tuple(boards)
        self._cells = tuple(cells)
        self._temp_idx: IntArray = np.array(temp_idx, dtype=np.intp)
        self._has_temp = self._temp_idx >= 0
        self._safe_idx: IntArray = np.where(self._has_temp, self._temp_idx, 0)

    def board_of(self, cell: int) -> str:
        line, address, _ch = self._cells[cell]
        return f"{line}/{address}"

    def cell_temperatures(
        self, temp_c: FloatArray, temp_q: QualityArray
    ) -> tuple[FloatArray, QualityArray]:
        """Per-cell temperature and quality from the rack's sensor arrays (BAD without a sensor)."""
        if temp_c.size == 0:
            return (
                np.full(self.n_cells, np.nan),
                np.full(self.n_cells, Quality.BAD, dtype=np.uint8),
            )
        t: FloatArray = np.where(self._has_temp, temp_c[self._safe_idx], np.nan)
        q: QualityArray = np.where(self._has_temp, temp_q[self._safe_idx], Quality.BAD).astype(
            np.uint8
        )
        return t, q


def cell_id(cell: int) -> str:
    """The id a technician sees: 1-based, as in the replay CSV's ``v_0001`` columns."""
    return f"cell_{cell + 1:04d}"
