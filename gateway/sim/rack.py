"""A simulated battery rack: cells (truth), cell boards and the string controller on cellbus.

Usable two ways: without any serial port, :meth:`RackSim.step` / :meth:`RackSim.measure` /
:attr:`RackSim.soc` drive multi-hour traces far faster than real time for estimator tests; behind
ptys (``gateway.sim.rack_server``), :meth:`RackSim.handle` answers cellbus frames as the boards
of one line would. Faults are injected by method; the truth is always readable.

Layout: line ``l`` carries boards at addresses 1..``boards_per_line``; board index
``b = l * boards_per_line + address - 1``; cell ``c`` of board ``b`` is string cell
``b * cells_per_board + c`` (the string order the driver assembles).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivers.cellbus import protocol as p
from drivers.cellbus.frame import BROADCAST, Frame, encode
from gateway.sim.cells import Cells, Chemistry, FloatArray, Spread


@dataclass(frozen=True)
class RackSpec:
    lines: int = 4
    boards_per_line: int = 25
    cells_per_board: int = 14
    temps_per_board: int = 4
    chemistry: Chemistry = Chemistry.LFP
    soc0: float = 0.5
    spread: Spread = field(default_factory=Spread)
    bleed_ohm: float = 33.0
    ambient_c: float = 25.0
    board_temp_limit_c: float = 70.0  # a board above this cuts its own bleeding
    cell_noise_v: float = 300e-6  # AFE noise, 1 sigma, on top of the 100 µV quantisation
    temp_noise_c: float = 0.1
    current_noise_a: float = 0.05
    controller_line: int = 0  # the string controller (address 0) sits on this line
    seed: int = 0

    @property
    def boards(self) -> int:
        return self.lines * self.boards_per_line

    @property
    def cells(self) -> int:
        return self.boards * self.cells_per_board


@dataclass(frozen=True)
class Segment:
    duration_s: float
    current_a: float  # + discharge


class Profile:
    """A piecewise-constant string current, repeating after its last segment."""

    def __init__(self, segments: Sequence[Segment]) -> None:
        if not segments or any(s.duration_s <= 0 for s in segments):
            raise ValueError("a profile needs segments of positive duration")
        self.segments = tuple(segments)
        self._ends = list(itertools.accumulate(s.duration_s for s in segments))
        self.period = self._ends[-1]

    def __call__(self, t: float) -> float:
        k = bisect.bisect_right(self._ends, t % self.period)
        return self.segments[min(k, len(self.segments) - 1)].current_a

    @classmethod
    def constant(cls, current_a: float) -> Profile:
        return cls([Segment(3600.0, current_a)])

    @classmethod
    def grid_service(
        cls, duration_s: float, amplitude_a: float, rng: np.random.Generator
    ) -> list[Segment]:
        """Frequency-response-like pulses: alternating sign, 10-120 s each, rests between."""
        out: list[Segment] = []
        t, sign = 0.0, 1.0
        while t < duration_s:
            on = float(rng.uniform(10, 120))
            off = float(rng.uniform(5, 60))
            out += [Segment(on, sign * amplitude_a * float(rng.uniform(0.3, 1.0))), Segment(off, 0)]
            t += on + off
            sign = -sign
        return out

    @classmethod
    def day(cls, capacity_ah: float, seed: int = 0) -> Profile:
        """24 h: charge, discharge and rest at C/4, and grid-service pulses up to C/3."""
        rng = np.random.default_rng(seed)
        c4, hour = capacity_ah / 4, 3600.0
        segs = [Segment(hour, 0.0), Segment(1.5 * hour, -c4), Segment(hour, 0.0)]
        segs += cls.grid_service(6 * hour, capacity_ah / 3, rng)
        segs += [Segment(1.5 * hour, c4), Segment(2.5 * hour, 0.0)]
        segs += cls.grid_service(8 * hour, capacity_ah / 3, rng)
        segs.append(Segment(2.5 * hour, 0.0))
        return cls(segs)


@dataclass(frozen=True)
class Measurement:
    """What the front ends read at one instant (after noise, quantisation and wiring faults)."""

    t: float
    cell_v: FloatArray  # [cells], the quantised AFE reading in volts
    temp_c: FloatArray  # [boards, temps_per_board]
    current_a: float
    string_v: float


U16 = npt.NDArray[np.uint16]
I16 = npt.NDArray[np.int16]


class RackSim:
    """The rack's truth, its boards' protocol state and the faults injected into them."""

    def __init__(self, spec: RackSpec, profile: Callable[[float], float] | None = None) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.cells = Cells(
            spec.cells,
            spec.chemistry,
            soc0=spec.soc0,
            rng=self.rng,
            spread=spec.spread,
            ambient_c=spec.ambient_c,
        )
        self.profile = profile or Profile.constant(0.0)
        self.t = 0.0
        b, c, k = spec.boards, spec.cells_per_board, spec.temps_per_board
        self.bal_mask = np.zeros(b, dtype=np.uint16)
        self.bal_deadline = np.zeros(b)
        self.bal_timed_out = np.zeros(b, dtype=bool)
        self.latched_seq = np.zeros(b, dtype=np.uint8)
        self.latched_cells = np.zeros((b, c), dtype=np.uint16)
        self.latched_temps = np.zeros((b, k), dtype=np.int16)
        self.sampled = np.zeros(b, dtype=bool)
        self.missed = np.zeros(b, dtype=bool)
        self.silent = np.zeros(b, dtype=bool)
        self.temp_offset_c = np.zeros(b)
        self.open_wire = np.zeros(spec.cells, dtype=bool)
        self.string_latched = p.StringReading(0, 0.0, 0.0)
        self.applied_current = 0.0

    # ----- truth -------------------------------------------------------------------------------
    @property
    def soc(self) -> FloatArray:
        """True SOC per string cell (a copy)."""
        return self.cells.soc.copy()

    def bleeding(self) -> npt.NDArray[np.bool_]:
        """Cells whose bleed resistor conducts now."""
        s = self.spec
        active = (self.t < self.bal_deadline) & ~self._board_hot()
        bits = (self.bal_mask[:, None] >> np.arange(s.cells_per_board, dtype=np.uint16)) & 1
        on: npt.NDArray[np.bool_] = (bits.astype(bool) & active[:, None]).reshape(-1)
        return on

    # ----- dynamics ----------------------------------------------------------------------------
    def step(self, dt: float, current_a: float | None = None) -> None:
        """Advance ``dt`` s with the string current (default: the profile at the step's start).

        A bleed resistor conducts for the part of the step before its board's timer runs out, so
        the charge it removes does not depend on the step size.
        """
        if dt <= 0:
            return
        s = self.spec
        i = self.profile(self.t) if current_a is None else current_a
        self.applied_current = i
        frac = np.clip((self.bal_deadline - self.t) / dt, 0.0, 1.0) * ~self._board_hot()
        bits = (self.bal_mask[:, None] >> np.arange(s.cells_per_board, dtype=np.uint16)) & 1
        duty = (bits * frac[:, None]).reshape(-1)
        bleed = duty * self.cells.terminal() / s.bleed_ohm
        self.cells.step(dt, i + bleed)
        self.t += dt
        expired = (self.bal_mask != 0) & (self.t >= self.bal_deadline)
        self.bal_timed_out |= expired
        self.bal_mask[expired] = 0

    def run(self, duration_s: float, dt: float = 1.0) -> None:
        for _ in range(round(duration_s / dt)):
            self.step(dt)

    # ----- measurement -------------------------------------------------------------------------
    def _board_temps(self) -> FloatArray:
        s = self.spec
        per_board = self.cells.temp_c.reshape(s.boards, s.cells_per_board)
        groups = np.array_split(np.arange(s.cells_per_board), max(s.temps_per_board, 1))
        t = np.stack([per_board[:, g].mean(axis=1) for g in groups], axis=1)
        out: FloatArray = t[:, : s.temps_per_board] + self.temp_offset_c[:, None]
        return out

    def _board_hot(self) -> npt.NDArray[np.bool_]:
        if self.spec.temps_per_board == 0:
            return np.zeros(self.spec.boards, dtype=bool)
        hot: npt.NDArray[np.bool_] = self._board_temps().max(axis=1) > self.spec.board_temp_limit_c
        return hot

    def _afe_volts(self) -> FloatArray:
        """Cell readings before quantisation, with open sense wires as a real AFE sees them.

        An open wire at the bottom of cell k (the node it shares with cell k-1 floats): the
        channel of cell k reads ~0 V and cell k-1 reads the sum of both (the input filter pulls
        the floating node to the lower tap). At the board's first cell the channel reads ~0 V.
        """
        s = self.spec
        v = self.cells.terminal()
        v = v + s.cell_noise_v * self.rng.standard_normal(v.size)
        for k in np.flatnonzero(self.open_wire):
            if k % s.cells_per_board:
                v[k - 1] += v[k]
            v[k] = abs(s.cell_noise_v * self.rng.standard_normal())
        return v

    def _temp_codes(self) -> I16:
        s = self.spec
        noise = s.temp_noise_c * self.rng.standard_normal((s.boards, s.temps_per_board))
        codes: I16 = np.round((self._board_temps() + noise) / p.TEMP_LSB_C).astype(np.int16)
        return codes

    def _string_reading(self, seq: int) -> p.StringReading:
        noise = self.spec.current_noise_a * float(self.rng.standard_normal())
        return p.StringReading(
            seq, self.applied_current + noise, float(self.cells.terminal().sum())
        )

    def measure(self) -> Measurement:
        """One reading of the whole rack, as the boards would latch it (for tests without ptys)."""
        cell_v: FloatArray = _cell_codes(self._afe_volts()).astype(np.float64) * p.CELL_LSB_V
        temps: FloatArray = self._temp_codes().astype(np.float64) * p.TEMP_LSB_C
        string = self._string_reading(0)
        return Measurement(self.t, cell_v, temps, string.current_a, string.voltage_v)

    # ----- faults ------------------------------------------------------------------------------
    def weak_cell(self, cell: int, capacity_factor: float) -> None:
        self.cells.capacity_as[cell] *= capacity_factor

    def leaky_cell(self, cell: int, per_day: float) -> None:
        """Self-discharge of ``per_day`` (fraction of capacity per day) for one cell."""
        self.cells.self_discharge_a[cell] = per_day * self.cells.capacity_as[cell] / 86400.0

    def set_open_wire(self, cell: int, open_: bool = True) -> None:
        self.open_wire[cell] = open_

    def set_overtemp(self, board: int, delta_c: float) -> None:
        self.temp_offset_c[board] = delta_c

    def set_silent(self, board: int, silent: bool = True) -> None:
        self.silent[board] = silent

    # ----- protocol ----------------------------------------------------------------------------
    def board_index(self, line: int, address: int) -> int | None:
        s = self.spec
        if not 0 <= line < s.lines or not p.FIRST_BOARD <= address <= s.boards_per_line:
            return None
        return line * s.boards_per_line + address - 1

    def latch(self, line: int, seq: int) -> None:
        """SAMPLE_NOW heard on ``line``: every live board there latches one conversion."""
        s = self.spec
        lo, hi = line * s.boards_per_line, (line + 1) * s.boards_per_line
        live = ~self.silent[lo:hi]
        cells = _cell_codes(self._afe_volts()).reshape(s.boards, s.cells_per_board)[lo:hi]
        codes = self._temp_codes()[lo:hi]
        self.latched_cells[lo:hi][live] = cells[live]
        self.latched_temps[lo:hi][live] = codes[live]
        self.latched_seq[lo:hi][live] = seq
        self.sampled[lo:hi] |= live
        self.missed[lo:hi] = ~live
        if line == s.controller_line:
            self.string_latched = self._string_reading(seq)

    def missed_broadcast(self, line: int) -> None:
        """The line's SAMPLE_NOW was lost to noise: its boards keep their previous sample."""
        s = self.spec
        self.missed[line * s.boards_per_line : (line + 1) * s.boards_per_line] = True

    def status(self, b: int) -> p.Status:
        s = self.spec
        ow_cells = self.open_wire[b * s.cells_per_board : (b + 1) * s.cells_per_board]
        ow = ow_cells.copy()  # both channels beside a broken tap read wrong
        ow[:-1] |= ow_cells[1:]
        ow_mask = int((ow.astype(np.uint32) << np.arange(s.cells_per_board, dtype=np.uint32)).sum())
        hot = bool(self._board_hot()[b])
        faults = p.Fault(0)
        if hot:
            faults |= p.Fault.OVER_TEMPERATURE
        if ow_mask:
            faults |= p.Fault.OPEN_WIRE
        if self.missed[b]:
            faults |= p.Fault.SAMPLE_MISSED
        if self.bal_timed_out[b]:
            faults |= p.Fault.BALANCE_TIMEOUT
        left = max(0.0, float(self.bal_deadline[b]) - self.t) if self.bal_mask[b] else 0.0
        mask = 0 if hot else int(self.bal_mask[b])
        return p.Status(int(self.latched_seq[b]), int(faults), ow_mask, mask, min(left, 6553.5))

    def handle(self, line: int, frame: Frame) -> bytes | None:
        """The reply (wire bytes) of whoever on ``line`` is addressed; None when nobody answers."""
        cmd = frame.command
        if frame.address == BROADCAST:
            if cmd == p.Command.SAMPLE_NOW and len(frame.payload) == 1:
                self.latch(line, frame.payload[0])
            return None
        if frame.address == p.CONTROLLER:
            if line != self.spec.controller_line:
                return None
            if cmd == p.Command.READ_STRING:
                return _reply(0, cmd, self.string_latched.encode())
            if cmd == p.Command.IDENTIFY:
                return _reply(0, cmd, p.Identity(p.PROTOCOL_VERSION, 0, 0, 1, 1, 0x0100).encode())
            return _refuse(0, cmd, p.Refusal.UNKNOWN_COMMAND)
        b = self.board_index(line, frame.address)
        if b is None or self.silent[b]:
            return None
        return self._board_reply(b, frame)

    def _board_reply(self, b: int, frame: Frame) -> bytes:
        s, a, cmd = self.spec, frame.address, frame.command
        if cmd == p.Command.IDENTIFY:
            ident = p.Identity(
                p.PROTOCOL_VERSION, s.cells_per_board, s.temps_per_board, 2, 10_000 + b, 0x0103
            )
            return _reply(a, cmd, ident.encode())
        if cmd == p.Command.SET_BALANCE:
            if len(frame.payload) != 4:
                return _refuse(a, cmd, p.Refusal.BAD_LENGTH)
            mask, timeout = p.decode_balance(frame.payload)
            if mask >> s.cells_per_board:
                return _refuse(a, cmd, p.Refusal.BAD_VALUE)
            self.bal_mask[b] = mask if timeout > 0 else 0
            self.bal_deadline[b] = self.t + timeout
            self.bal_timed_out[b] = False
            return _reply(a, cmd, frame.payload)
        if frame.payload:
            return _refuse(a, cmd, p.Refusal.BAD_LENGTH)
        if cmd == p.Command.READ_STATUS:
            return _reply(a, cmd, self.status(b).encode())
        if cmd not in (p.Command.READ_SAMPLE, p.Command.READ_CELLS, p.Command.READ_TEMPS):
            return _refuse(a, cmd, p.Refusal.UNKNOWN_COMMAND)
        if not self.sampled[b]:
            return _refuse(a, cmd, p.Refusal.NOT_SAMPLED)
        seq = int(self.latched_seq[b])
        if cmd == p.Command.READ_CELLS:
            return _reply(a, cmd, p.encode_cells(seq, self.latched_cells[b]))
        if cmd == p.Command.READ_TEMPS:
            return _reply(a, cmd, p.encode_temps(seq, self.latched_temps[b]))
        payload = p.encode_sample(self.status(b), self.latched_cells[b], self.latched_temps[b])
        return _reply(a, cmd, payload)


def _cell_codes(volts: FloatArray) -> U16:
    codes: U16 = np.clip(np.round(volts / p.CELL_LSB_V), 0, p.CELL_INVALID - 1).astype(np.uint16)
    return codes


def _reply(address: int, command: int, payload: bytes) -> bytes:
    return encode(address, command | p.REPLY, payload)


def _refuse(address: int, command: int, code: p.Refusal) -> bytes:
    return encode(address, command | p.REFUSAL, bytes((code,)))
