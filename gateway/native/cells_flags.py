"""Bits and modes the cells kernel shares with Python (gridgate.h GG_CELL_*, GG_BAL_*).

Compared with the C constants once at import, so a change on one side cannot go unnoticed.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final

from gateway.core.errors import NativeError
from gateway.native.ffi import lib


class CellFlag(IntFlag):
    """Bits of a cell's ``flags`` (gridgate.h GG_CELL_*)."""

    OV = 1 << 0
    UV = 1 << 1
    OT = 1 << 2
    UT = 1 << 3
    DEVIATION = 1 << 4
    IMPLAUSIBLE = 1 << 5
    V_BAD = 1 << 8
    T_BAD = 1 << 9
    STALE = 1 << 10
    NO_CURRENT = 1 << 11
    PREDICT_ONLY = 1 << 12
    BLEED = 1 << 16


# A cell with any of these is faulted: counted, not a balancing target, interlocks its board.
FAULTS: Final = (
    CellFlag.OV
    | CellFlag.UV
    | CellFlag.OT
    | CellFlag.UT
    | CellFlag.DEVIATION
    | CellFlag.IMPLAUSIBLE
    | CellFlag.STALE
)


class BoardInterlock(IntFlag):
    """Why a board may not bleed (gridgate.h GG_BAL_IL_*)."""

    OFF = 1 << 0
    LOW_V = 1 << 1
    HOT = 1 << 2
    STALE = 1 << 3
    FAULT = 1 << 4
    NO_TARGET = 1 << 5


class BalanceMode(IntEnum):
    OFF = 0
    SOC = 1
    VOLTAGE = 2


def _check_constants() -> None:
    """The Python twins of the C constants, compared once at import."""
    pairs = [(f"GG_CELL_{f.name}", int(f)) for f in CellFlag]
    pairs += [(f"GG_BAL_IL_{f.name}", int(f)) for f in BoardInterlock]
    pairs += [(f"GG_BAL_{m.name}", int(m)) for m in BalanceMode]
    pairs.append(("GG_CELL_FAULTS", int(FAULTS)))
    wrong = [name for name, value in pairs if getattr(lib, name) != value]
    if wrong:
        raise NativeError(f"cells constants differ between C and Python: {wrong}")


_check_constants()

__all__ = ["FAULTS", "BalanceMode", "BoardInterlock", "CellFlag"]
