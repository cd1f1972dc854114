"""The READ_SAMPLE payloads of a whole rack decoded in one vectorised pass.

Decoding board by board costs a dozen numpy calls on 14-element arrays per board, a third of the
rack's read. Instead each accepted payload is copied as bytes into one rack-wide buffer at a
fixed place, and one pass of numpy over the whole buffer turns it into the rack's arrays.

Every payload starts at an odd offset, so its 9-byte status leaves all 16-bit fields after the
sequence byte (faults, open wire, balancing, balance left, then the cell and temperature codes)
on even offsets: the buffer is read as one array of little-endian words and each field is a
precomputed gather. The blank buffer holds the invalid codes (``CELL_INVALID``,
``TEMP_INVALID``) for every channel and zero status, so a board that did not answer decodes to
NaN/BAD cells and temperatures and zero faults, exactly as if nothing had been stored for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.cellbus import protocol as p
from gateway.core.model import FloatArray, Quality, QualityArray

U16Array = npt.NDArray[np.uint16]
IndexArray = npt.NDArray[np.intp]

# Word offsets inside a payload starting at an odd byte (payload byte 1 is word 1 of it, ...).
_STATUS_BYTES = 9  # seq (B), faults, open_wire, balancing, balance_left (4 x H)
_FAULTS, _OPEN_WIRE, _BALANCING, _LEFT = 1, 3, 5, 7  # byte offsets of the status words
if p.Status.size() != _STATUS_BYTES:  # pragma: no cover - a protocol change must come here
    raise ImportError("cellbus Status layout changed: update drivers/cellbus/rack_decode.py")

# numpy scalars made once: an IntEnum handed to numpy costs an enum attribute lookup per call.
_GOOD = np.uint8(Quality.GOOD)
_UNCERTAIN = np.uint8(Quality.UNCERTAIN)
_BAD = np.uint8(Quality.BAD)
_AFE_FAULT = np.uint16(p.Fault.AFE_FAULT)
_CELL_INVALID = np.uint16(p.CELL_INVALID)
_TEMP_INVALID = np.int16(p.TEMP_INVALID)


@dataclass(frozen=True)
class DecodedRack:
    """The rack's arrays of one cycle, fresh and owned by the caller."""

    cell_v: FloatArray  # [n_cells] V, NaN where not read or invalid
    cell_q: QualityArray
    temp_c: FloatArray  # [n_temps] °C
    temp_q: QualityArray
    faults: U16Array  # [n_boards], 0 for a board that did not answer
    open_wire: U16Array
    balancing: U16Array
    balance_left: FloatArray


class RackDecoder:
    """Where each board's payload lives in the rack buffer, and the one-pass decode of it.

    ``boards`` is ``(n_cells, n_temps)`` per board in rack order (the order of the cell and
    temperature arrays).
    """

    def __init__(self, boards: Sequence[tuple[int, int]]) -> None:
        offsets: list[int] = []
        sizes: list[int] = []
        cell_byte: list[int] = []
        cell_board: list[int] = []
        cell_bit: list[int] = []
        temp_byte: list[int] = []
        at = 1
        for b, (n_cells, n_temps) in enumerate(boards):
            size = p.sample_size(n_cells, n_temps)
            offsets.append(at)
            sizes.append(size)
            first_cell = at + _STATUS_BYTES
            cell_byte += range(first_cell, first_cell + 2 * n_cells, 2)
            cell_board += [b] * n_cells
            cell_bit += [1 << ch for ch in range(n_cells)]
            first_temp = first_cell + 2 * n_cells
            temp_byte += range(first_temp, first_temp + 2 * n_temps, 2)
            at += size + 1  # an odd size plus one keeps the next payload on an odd byte
        self.offsets = tuple(offsets)
        self.sizes = tuple(sizes)
        start = np.array(offsets, dtype=np.intp)
        self._faults_w: IndexArray = (start + _FAULTS) // 2
        self._open_wire_w: IndexArray = (start + _OPEN_WIRE) // 2
        self._balancing_w: IndexArray = (start + _BALANCING) // 2
        self._left_w: IndexArray = (start + _LEFT) // 2
        self._cell_w: IndexArray = np.array(cell_byte, dtype=np.intp) // 2
        self._cell_board: IndexArray = np.array(cell_board, dtype=np.intp)
        self._cell_bit: U16Array = np.array(cell_bit, dtype=np.uint16)
        self._temp_w: IndexArray = np.array(temp_byte, dtype=np.intp) // 2
        blank = np.zeros(at - 1, dtype=np.uint8)  # the last payload ends at byte at - 2
        words = blank.view("<u2")
        words[self._cell_w] = p.CELL_INVALID
        words.view("<i2")[self._temp_w] = p.TEMP_INVALID
        self._blank = blank.tobytes()

    def blank(self) -> bytearray:
        """A buffer for one cycle: every board as if it had not answered."""
        return bytearray(self._blank)

    def decode(self, raw: bytearray) -> DecodedRack:
        words = np.frombuffer(raw, dtype="<u2")
        faults = words[self._faults_w]
        open_wire = words[self._open_wire_w]
        codes = words[self._cell_w]
        valid = codes != _CELL_INVALID
        # A board whose front end failed its self test has no trustworthy cell at all.
        afe = (faults & _AFE_FAULT).astype(bool)[self._cell_board]
        readable = valid & ~afe
        cell_v = np.where(readable, codes * p.CELL_LSB_V, np.nan)
        cell_q = np.where(readable, _GOOD, _BAD)
        # An open sense wire leaves a code that may be off: worse than GOOD, never better than
        # what it was (an AFE fault keeps it BAD).
        wire = valid & (open_wire[self._cell_board] & self._cell_bit).astype(bool)
        cell_q[wire] = np.maximum(cell_q[wire], _UNCERTAIN)
        temps = words[self._temp_w].view(np.int16)
        tvalid = temps != _TEMP_INVALID
        return DecodedRack(
            cell_v=cell_v,
            cell_q=cell_q,
            temp_c=np.where(tvalid, temps * p.TEMP_LSB_C, np.nan),
            temp_q=np.where(tvalid, _GOOD, _BAD),
            faults=faults,
            open_wire=open_wire,
            balancing=words[self._balancing_w],
            balance_left=words[self._left_w] * p.BALANCE_LSB_S,
        )
