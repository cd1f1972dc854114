"""A rack: all cellbus lines read in parallel, one cycle at a time, into numpy arrays.

One cycle: SAMPLE_NOW broadcast on every line at the same instant (each board latches one
conversion), the conversion time, then on each line in parallel READ_STRING from the string
controller and READ_SAMPLE from every board in address order. A board that does not answer
costs its line one response timeout and nothing more; its cells are NaN and BAD. Every failed
transaction is counted in :attr:`CellRack.errors` ``[board, ErrorKind]``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.cellbus import protocol as p
from drivers.cellbus.config import BoardSpec, RackConfig
from drivers.cellbus.errors import (
    CellbusError,
    CellbusPortError,
    CellbusStaleError,
    ErrorKind,
)
from drivers.cellbus.line import CellLine
from drivers.cellbus.rack_decode import DecodedRack, RackDecoder
from gateway.core.errors import DeviceError
from gateway.core.model import FloatArray, Quality, QualityArray

log = logging.getLogger(__name__)

U16Array = npt.NDArray[np.uint16]
BoolArray = npt.NDArray[np.bool_]
CountArray = npt.NDArray[np.uint32]
N_KINDS = len(ErrorKind)


@dataclass(frozen=True)
class RackSample:
    """One cycle of the whole rack; arrays are fresh copies owned by the caller."""

    seq: int
    ts: float  # wall clock at the SAMPLE_NOW broadcast
    duration_s: float  # broadcast to last reply
    cell_v: FloatArray  # [n_cells] V, NaN where not read
    cell_q: QualityArray  # [n_cells]
    temp_c: FloatArray  # [n_temps] °C
    temp_q: QualityArray
    board_ok: BoolArray  # [n_boards] a fresh sample came back this cycle
    faults: U16Array  # [n_boards] protocol.Fault bits (0 where not read)
    open_wire: U16Array  # [n_boards] channel bits
    balancing: U16Array  # [n_boards] bleed mask the board applies now
    balance_left_s: FloatArray  # [n_boards]
    current_a: float  # string current, + discharge; NaN if not read
    string_v: float
    string_q: Quality
    errors: CountArray  # [n_boards, ErrorKind] cumulative
    controller_errors: CountArray  # [ErrorKind] cumulative, the string controller's


@dataclass(frozen=True)
class _Slot:
    """Where one board's channels land in the rack arrays."""

    index: int
    line: int
    spec: BoardSpec
    cell0: int
    temp0: int


class CellRack:
    """Owns one :class:`CellLine` per configured line; use as ``async with CellRack(cfg)``."""

    def __init__(self, config: RackConfig) -> None:
        self.config = config
        bus = config.bus
        self.lines = [
            CellLine(s, response_timeout=bus.response_timeout, gap=bus.inter_frame_gap)
            for s in config.lines
        ]
        slots: list[_Slot] = []
        cell0 = temp0 = 0
        for li, line in enumerate(config.lines):
            for spec in line.boards:
                slots.append(_Slot(len(slots), li, spec, cell0, temp0))
                cell0 += spec.n_cells
                temp0 += spec.n_temps
        self._slots = tuple(slots)
        self._by_line = [tuple(s for s in slots if s.line == li) for li in range(len(self.lines))]
        self._decoder = RackDecoder([(s.spec.n_cells, s.spec.n_temps) for s in slots])
        self.n_boards = len(slots)
        self.n_cells = cell0
        self.n_temps = temp0
        self.errors: CountArray = np.zeros((self.n_boards, N_KINDS), dtype=np.uint32)
        self.controller_errors: CountArray = np.zeros(N_KINDS, dtype=np.uint32)
        self._seq = 0
        self._was_ok = np.ones(self.n_boards, dtype=bool)
        self._line_down: list[str | None] = [None] * len(self.lines)

    def board_of_cell(self, cell: int) -> tuple[str, int, int]:
        """(line name, board address, channel) of a string cell: what a technician looks for."""
        for s in self._slots:
            if s.cell0 <= cell < s.cell0 + s.spec.n_cells:
                return self.lines[s.line].name, s.spec.address, cell - s.cell0
        raise IndexError(f"cell {cell} is not in this rack ({self.n_cells} cells)")

    async def __aenter__(self) -> CellRack:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for line in self.lines:
            line.close()

    # ----- one cycle ---------------------------------------------------------------------------
    async def read(self) -> RackSample:
        """Broadcast SAMPLE_NOW, read every board of every line in parallel; never raises for a
        board or a line: what could not be read is NaN and BAD, and counted."""
        self._seq = self._seq % 255 + 1  # 1..255: a board's power-up sequence 0 never matches
        seq = self._seq
        ts, t0 = time.time(), time.monotonic()
        out = _Buffers(self._decoder, self.n_boards)
        alive = await asyncio.gather(*(self._broadcast(li, seq) for li in range(len(self.lines))))
        await asyncio.sleep(self.config.bus.conversion_time)
        await asyncio.gather(
            *(self._read_line(li, seq, out) for li in range(len(self.lines)) if alive[li])
        )
        rack = out.store()
        self._log_changes(out)
        return RackSample(
            seq=seq,
            ts=ts,
            duration_s=time.monotonic() - t0,
            cell_v=rack.cell_v,
            cell_q=rack.cell_q,
            temp_c=rack.temp_c,
            temp_q=rack.temp_q,
            board_ok=out.board_ok,
            faults=rack.faults,
            open_wire=rack.open_wire,
            balancing=rack.balancing,
            balance_left_s=rack.balance_left,
            current_a=out.string[0],
            string_v=out.string[1],
            string_q=Quality.GOOD if out.string_ok else Quality.BAD,
            errors=self.errors.copy(),
            controller_errors=self.controller_errors.copy(),
        )

    async def _broadcast(self, li: int, seq: int) -> bool:
        line = self.lines[li]
        try:
            await line.broadcast(p.Command.SAMPLE_NOW, bytes((seq,)))
        except CellbusPortError as exc:
            self._line_state(li, str(exc))
            return False
        except CellbusError as exc:
            self._line_state(li, f"line {line.name}: broadcast failed: {exc}")
            return False
        self._line_state(li, None)
        return True

    def _line_state(self, li: int, cause: str | None) -> None:
        if cause != self._line_down[li]:
            if cause is None:
                log.info("line %s: back", self.lines[li].name)
            elif self._line_down[li] is None:
                log.warning("%s", cause)
            self._line_down[li] = cause

    async def _read_line(self, li: int, seq: int, out: _Buffers) -> None:
        line = self.lines[li]
        if line.settings.controller:
            await self._read_controller(line, seq, out)
        for slot in self._by_line[li]:
            if not line.is_open:
                return
            await self._read_board(line, slot, seq, out)

    async def _attempts(
        self, line: CellLine, address: int, command: int, counts: CountArray
    ) -> bytes | DeviceError:
        """The reply payload, or the last error; each failure counted in ``counts[kind]``.

        Retries only after errors a retry can fix: silence would stall the line again.
        """
        last: CellbusError | None = None
        for _ in range(1 + self.config.bus.retries):
            try:
                return await line.transact(address, command)
            except CellbusPortError as exc:
                return exc
            except CellbusError as exc:
                last = exc
                counts[exc.kind] += 1
                if exc.kind in (ErrorKind.TIMEOUT, ErrorKind.REFUSED):
                    break
        assert last is not None
        return last

    async def _read_controller(self, line: CellLine, seq: int, out: _Buffers) -> None:
        counts = self.controller_errors
        reply = await self._attempts(line, p.CONTROLLER, p.Command.READ_STRING, counts)
        if isinstance(reply, DeviceError):
            return
        try:
            reading = p.StringReading.decode(reply)
        except struct.error:
            counts[ErrorKind.UNEXPECTED] += 1
            return
        if reading.seq != seq:
            counts[ErrorKind.STALE] += 1
            return
        out.string[:] = (reading.current_a, reading.voltage_v)
        out.string_ok = True

    async def _read_board(self, line: CellLine, slot: _Slot, seq: int, out: _Buffers) -> None:
        spec, counts = slot.spec, self.errors[slot.index]
        reply = await self._attempts(line, spec.address, p.Command.READ_SAMPLE, counts)
        if isinstance(reply, CellbusError):
            out.causes[slot.index] = f"{reply.kind.name.lower()}: {reply}"
            return
        if isinstance(reply, DeviceError):
            out.causes[slot.index] = str(reply)
            return
        try:
            sample_seq = p.sample_seq(reply, spec.n_cells, spec.n_temps)
            if sample_seq != seq:
                raise CellbusStaleError(f"sample {sample_seq}, cycle {seq}")
        except ValueError as exc:
            counts[ErrorKind.UNEXPECTED] += 1
            out.causes[slot.index] = f"unexpected: {exc}"
            return
        except CellbusStaleError as exc:
            counts[ErrorKind.STALE] += 1
            out.causes[slot.index] = f"stale: {exc}"
            return
        out.keep(slot, reply)

    def _log_changes(self, out: _Buffers) -> None:
        ok = out.board_ok
        for b in np.flatnonzero(ok != self._was_ok).tolist():
            slot = self._slots[b]
            where = f"line {self.lines[slot.line].name} board {slot.spec.address}"
            if ok[b]:
                log.info("%s: answering again", where)
            else:
                log.warning("%s: no sample (%s)", where, out.causes.get(b, "line down"))
        self._was_ok = ok.copy()

    # ----- balancing ---------------------------------------------------------------------------
    async def write_balancing(self, masks: U16Array, timeout_s: float) -> BoolArray:
        """Send each board its bleed mask, self-stopping after ``timeout_s``; per-board ack.

        A board not acknowledged keeps its previous mask until that one's own timer runs out,
        which is why the timeout should be a few cycles, not hours.
        """
        if masks.shape != (self.n_boards,):
            raise ValueError(f"masks of shape {masks.shape}, expected ({self.n_boards},)")
        acked = np.zeros(self.n_boards, dtype=bool)

        async def one_line(li: int) -> None:
            line = self.lines[li]
            for slot in self._by_line[li]:
                mask = int(masks[slot.index])
                if mask >> slot.spec.n_cells:
                    raise ValueError(f"mask {mask:#x} has bits above {slot.spec.n_cells} cells")
                payload = p.encode_balance(mask, timeout_s)
                try:
                    reply = await line.transact(slot.spec.address, p.Command.SET_BALANCE, payload)
                except CellbusPortError:
                    return
                except CellbusError as exc:
                    self.errors[slot.index, exc.kind] += 1
                    continue
                if reply != payload:
                    self.errors[slot.index, ErrorKind.UNEXPECTED] += 1
                    continue
                acked[slot.index] = True

        await asyncio.gather(*(one_line(li) for li in range(len(self.lines))))
        return acked

    async def identify(self) -> list[p.Identity | None]:
        """Each board's identity (None if it did not answer), to check against the config."""
        found: list[p.Identity | None] = [None] * self.n_boards

        async def one_line(li: int) -> None:
            for slot in self._by_line[li]:
                try:
                    reply = await self.lines[li].transact(slot.spec.address, p.Command.IDENTIFY)
                    found[slot.index] = p.Identity.decode(reply)
                except CellbusPortError:
                    return
                except CellbusError as exc:
                    self.errors[slot.index, exc.kind] += 1
                except ValueError:
                    self.errors[slot.index, ErrorKind.UNEXPECTED] += 1

        await asyncio.gather(*(one_line(li) for li in range(len(self.lines))))
        return found


class _Buffers:
    """One cycle's accepted payloads, kept as bytes and decoded for the whole rack at the end:
    one vectorised pass instead of a dozen small numpy calls per board."""

    def __init__(self, decoder: RackDecoder, n_boards: int) -> None:
        self._decoder = decoder
        self._raw = decoder.blank()
        self.board_ok: BoolArray = np.zeros(n_boards, dtype=bool)
        self.string: FloatArray = np.full(2, np.nan)
        self.string_ok = False
        self.causes: dict[int, str] = {}

    def keep(self, slot: _Slot, payload: bytes) -> None:
        """A board's fresh sample, of the length its spec says (checked by the caller)."""
        at, size = self._decoder.offsets[slot.index], self._decoder.sizes[slot.index]
        if len(payload) != size:  # a wrong length would shift every later board in the buffer
            raise ValueError(f"sample of {len(payload)} bytes, expected {size}")
        self._raw[at : at + len(payload)] = payload
        self.board_ok[slot.index] = True

    def store(self) -> DecodedRack:
        """The rack's arrays: boards not kept this cycle are NaN/BAD with zero status."""
        return self._decoder.decode(self._raw)
