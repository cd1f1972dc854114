"""Why a cellbus transaction failed: one class per error kind the driver counts per board."""

from __future__ import annotations

from enum import IntEnum

from gateway.core.errors import DeviceError


class ErrorKind(IntEnum):
    """Column of the per-board error counter array."""

    CRC = 0  # a reply arrived but its CRC did not check
    TIMEOUT = 1  # nothing at all within the response timeout
    SHORT = 2  # bytes arrived but no complete frame (truncated reply, noise)
    UNEXPECTED = 3  # a valid frame that is not the answer (address, command, length)
    REFUSED = 4  # the board answered with a refusal code
    STALE = 5  # the sample is not the one this cycle's SAMPLE_NOW asked for


class CellbusError(DeviceError):
    kind: ErrorKind


class CellbusCrcError(CellbusError):
    kind = ErrorKind.CRC


class CellbusTimeoutError(CellbusError):
    kind = ErrorKind.TIMEOUT


class CellbusShortFrameError(CellbusError):
    kind = ErrorKind.SHORT


class CellbusUnexpectedError(CellbusError):
    kind = ErrorKind.UNEXPECTED


class CellbusRefusedError(CellbusError):
    kind = ErrorKind.REFUSED

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"refused with code {code:#04x}")


class CellbusStaleError(CellbusError):
    kind = ErrorKind.STALE


class CellbusPortError(DeviceError):
    """The serial port cannot be opened, or was lost (a USB adapter unplugged)."""
