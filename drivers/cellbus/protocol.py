"""Cellbus commands and their payload codecs (the tables of ``docs/cellbus.md``, as code).

All multi-byte fields are little-endian. A reply carries the request's command with bit 7 set;
a refusal carries bit 6 as well and one error-code byte. The same codecs serve the master (the
driver) and the boards (the simulator), so the two can only disagree about the spec, not typos.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

import numpy as np
import numpy.typing as npt

from drivers.cellbus.frame import MAX_PAYLOAD, OVERHEAD

CONTROLLER = 0x00  # the string controller (current shunt, string voltage)
FIRST_BOARD = 0x01
LAST_BOARD = 0xF7
REPLY = 0x80
REFUSAL = 0xC0
PROTOCOL_VERSION = 1

CELL_LSB_V = 100e-6  # 16-bit AFE code, 100 µV per count: 0..6.5534 V
TEMP_LSB_C = 0.1
CURRENT_LSB_A = 1e-3
STRING_LSB_V = 1e-3
BALANCE_LSB_S = 0.1
CELL_INVALID = 0xFFFF  # the board has no valid conversion for this channel
TEMP_INVALID = -0x8000  # sensor open or shorted
MAX_CELLS = 16  # a balancing mask is 16 bits
MAX_TEMPS = 8


class Command(IntEnum):
    IDENTIFY = 0x01
    READ_CELLS = 0x02
    READ_TEMPS = 0x03
    READ_STATUS = 0x04
    SET_BALANCE = 0x05
    SAMPLE_NOW = 0x06  # broadcast, never answered
    READ_SAMPLE = 0x07  # cells + temperatures + status of the latched sample, in one reply
    READ_STRING = 0x10  # string controller only


class Refusal(IntEnum):
    UNKNOWN_COMMAND = 0x01
    BAD_LENGTH = 0x02
    BAD_VALUE = 0x03
    NOT_SAMPLED = 0x04  # no sample latched since power-up
    BUSY = 0x05


class Fault(IntFlag):
    """Board fault bits (READ_STATUS / READ_SAMPLE)."""

    OVER_TEMPERATURE = 0x0001  # board heat sink above its own limit: balancing is cut
    OPEN_WIRE = 0x0002  # see the open-wire mask for the channels
    AFE_FAULT = 0x0004  # the front end failed its self test
    SAMPLE_MISSED = 0x0008  # the last SAMPLE_NOW was not received or not converted
    BALANCE_TIMEOUT = 0x0010  # the balancing timer ran out and the mask was cleared
    WATCHDOG_RESET = 0x0020  # the board restarted since the last status read


@dataclass(frozen=True, slots=True)
class Identity:
    version: int
    n_cells: int
    n_temps: int
    hardware: int
    serial: int
    firmware: int

    _FMT = struct.Struct("<BBBHIH")

    def encode(self) -> bytes:
        return self._FMT.pack(
            self.version, self.n_cells, self.n_temps, self.hardware, self.serial, self.firmware
        )

    @classmethod
    def decode(cls, payload: bytes) -> Identity:
        return cls(*cls._FMT.unpack(payload))

    @classmethod
    def size(cls) -> int:
        return cls._FMT.size


@dataclass(frozen=True, slots=True)
class Status:
    seq: int  # sequence number of the latched sample
    faults: int  # Fault bits
    open_wire: int  # one bit per cell channel
    balancing: int  # the mask being applied now
    balance_left: float  # seconds until the board stops bleeding by itself

    _FMT = struct.Struct("<BHHHH")

    def encode(self) -> bytes:
        left = round(self.balance_left / BALANCE_LSB_S)
        return self._FMT.pack(self.seq, self.faults, self.open_wire, self.balancing, left)

    @classmethod
    def decode(cls, payload: bytes | memoryview) -> Status:
        seq, faults, ow, bal, left = cls._FMT.unpack(payload)
        return cls(seq, faults, ow, bal, left * BALANCE_LSB_S)

    @classmethod
    def size(cls) -> int:
        return cls._FMT.size


U16 = npt.NDArray[np.uint16]
I16 = npt.NDArray[np.int16]


def encode_cells(seq: int, codes: U16) -> bytes:
    return bytes((seq,)) + codes.astype("<u2").tobytes()


def encode_temps(seq: int, codes: I16) -> bytes:
    return bytes((seq,)) + codes.astype("<i2").tobytes()


def encode_sample(status: Status, cells: U16, temps: I16) -> bytes:
    """READ_SAMPLE reply: status, then cell codes, then temperature codes."""
    return status.encode() + cells.astype("<u2").tobytes() + temps.astype("<i2").tobytes()


@dataclass(frozen=True, slots=True)
class Sample:
    status: Status
    cells: U16
    temps: I16


def sample_size(n_cells: int, n_temps: int) -> int:
    return Status.size() + 2 * n_cells + 2 * n_temps


def sample_seq(payload: bytes, n_cells: int, n_temps: int) -> int:
    """The sequence number of a READ_SAMPLE reply; ValueError if the length does not match this
    board's channel counts. All a reply needs before its bytes can be decoded in bulk."""
    if len(payload) != sample_size(n_cells, n_temps):
        raise ValueError(
            f"sample of {len(payload)} bytes, expected {sample_size(n_cells, n_temps)}"
        )
    return payload[0]


def decode_sample(payload: bytes, n_cells: int, n_temps: int) -> Sample:
    """ValueError if the length does not match this board's channel counts."""
    sample_seq(payload, n_cells, n_temps)
    n = Status.size()
    status = Status.decode(payload[:n])
    cells = np.frombuffer(payload, dtype="<u2", count=n_cells, offset=n)
    temps = np.frombuffer(payload, dtype="<i2", count=n_temps, offset=n + 2 * n_cells)
    return Sample(status, cells, temps)


def decode_cells(payload: bytes, n_cells: int) -> tuple[int, U16]:
    if len(payload) != 1 + 2 * n_cells:
        raise ValueError(f"cell reply of {len(payload)} bytes, expected {1 + 2 * n_cells}")
    return payload[0], np.frombuffer(payload, dtype="<u2", offset=1)


def decode_temps(payload: bytes, n_temps: int) -> tuple[int, I16]:
    if len(payload) != 1 + 2 * n_temps:
        raise ValueError(f"temperature reply of {len(payload)} bytes, expected {1 + 2 * n_temps}")
    return payload[0], np.frombuffer(payload, dtype="<i2", offset=1)


_BALANCE = struct.Struct("<HH")


def encode_balance(mask: int, timeout_s: float) -> bytes:
    """SET_BALANCE request (and its echo): mask, then the self-stop timer in 0.1 s (max 6553 s)."""
    ticks = round(timeout_s / BALANCE_LSB_S)
    if not 0 <= mask <= 0xFFFF or not 0 <= ticks <= 0xFFFF:
        raise ValueError(f"balance mask {mask:#x} or timeout {timeout_s} s out of range")
    return _BALANCE.pack(mask, ticks)


def decode_balance(payload: bytes) -> tuple[int, float]:
    mask, ticks = _BALANCE.unpack(payload)
    return mask, ticks * BALANCE_LSB_S


_STRING = struct.Struct("<BiI")


@dataclass(frozen=True, slots=True)
class StringReading:
    seq: int
    current_a: float  # positive while discharging
    voltage_v: float

    def encode(self) -> bytes:
        return _STRING.pack(
            self.seq, round(self.current_a / CURRENT_LSB_A), round(self.voltage_v / STRING_LSB_V)
        )

    @classmethod
    def decode(cls, payload: bytes) -> StringReading:
        seq, ma, mv = _STRING.unpack(payload)
        return cls(seq, ma * CURRENT_LSB_A, mv * STRING_LSB_V)

    @classmethod
    def size(cls) -> int:
        return _STRING.size


def check_channels(n_cells: int, n_temps: int) -> None:
    if not 1 <= n_cells <= MAX_CELLS or not 0 <= n_temps <= MAX_TEMPS:
        raise ValueError(f"{n_cells} cells / {n_temps} temperatures per board not supported")
    if sample_size(n_cells, n_temps) > MAX_PAYLOAD:  # pragma: no cover - bounded above
        raise ValueError("sample does not fit one frame")


@dataclass(frozen=True)
class Budget:
    """Bus time of one cycle on one line (READ_SAMPLE per board + controller + broadcast)."""

    baudrate: int
    bytes_per_cycle: int
    wire_s: float  # time the bytes occupy the wire
    turnaround_s: float  # board reply latency + master gap, summed over transactions
    cycle_s: float

    @property
    def busy_s(self) -> float:
        return self.wire_s + self.turnaround_s

    @property
    def load(self) -> float:
        return self.busy_s / self.cycle_s


def line_budget(
    baudrate: int,
    boards: int,
    n_cells: int,
    n_temps: int,
    *,
    controller: bool,
    cycle_s: float,
    turnaround_s: float = 200e-6,
    conversion_s: float = 2e-3,
) -> Budget:
    """The worst-case bus time of one cycle: what the doc's budget table is computed from.

    10 bit times per byte (8N1). ``turnaround_s`` per transaction is the spec's maximum board
    reply latency (150 µs) plus the master's inter-frame gap (50 µs).
    """
    broadcast = OVERHEAD + 1
    per_board = OVERHEAD + OVERHEAD + sample_size(n_cells, n_temps)
    total = broadcast + boards * per_board
    transactions = boards
    if controller:
        total += OVERHEAD + OVERHEAD + StringReading.size()
        transactions += 1
    wire = total * 10 / baudrate
    return Budget(baudrate, total, wire, transactions * turnaround_s + conversion_s, cycle_s)
