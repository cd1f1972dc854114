"""Names of Modbus exception codes, as the application protocol spec writes them.

A technician reading the journal should see ``ILLEGAL DATA ADDRESS`` rather than ``code 2``:
the name says whether the map is wrong (1-3), the device is unwell (4-8) or a gateway could not
reach the device behind it (0x0A, 0x0B).
"""

from __future__ import annotations

from types import MappingProxyType

from gateway.core.errors import DeviceError

EXCEPTION_NAMES: MappingProxyType[int, str] = MappingProxyType(
    {
        0x01: "ILLEGAL FUNCTION",
        0x02: "ILLEGAL DATA ADDRESS",
        0x03: "ILLEGAL DATA VALUE",
        0x04: "SERVER DEVICE FAILURE",
        0x05: "ACKNOWLEDGE",
        0x06: "SERVER DEVICE BUSY",
        0x07: "NEGATIVE ACKNOWLEDGE",
        0x08: "MEMORY PARITY ERROR",
        0x0A: "GATEWAY PATH UNAVAILABLE",
        0x0B: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
    }
)


def exception_name(code: int) -> str:
    """``"ILLEGAL DATA ADDRESS (0x02)"``; unknown codes keep their number so nothing is hidden."""
    name = EXCEPTION_NAMES.get(code, "UNKNOWN EXCEPTION")
    return f"{name} (0x{code:02X})"


class ModbusReadError(DeviceError):
    """One read request failed; ``cause`` is the short phrase the health log line shows.

    ``answered`` tells whether the device was reachable (it sent a well-formed reply): such a
    failure is about the request, not the link, so it neither aborts the rest of the plan nor
    backs the device off.
    """

    answered = False

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class ModbusTimeoutError(ModbusReadError):
    """No reply within the device's timeout."""


class ModbusConnectError(ModbusReadError):
    """The TCP connection or the serial port could not be opened, or was lost."""


class ModbusFrameError(ModbusReadError):
    """Bytes came back but not a usable reply: short, garbled, or the wrong size."""


class ModbusExceptionError(ModbusReadError):
    """The device answered with a Modbus exception response."""

    answered = True

    def __init__(self, code: int) -> None:
        super().__init__(exception_name(code))
        self.code = code
