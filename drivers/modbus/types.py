"""The vocabulary of a Modbus register map: tables, data types, byte orders, one point.

A :class:`RegisterPoint` is a validated map entry. It knows where its value lives on the wire
(table, 0-based protocol address, how many registers or bits) and how to turn the raw registers
into a number (type, order, bit, scale, offset). Everything after compilation only sees
:class:`gateway.core.model.PointSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from gateway.core.points import PointSpec

# Protocol limits of one read request (Modbus application protocol v1.1b3, 6.1 to 6.4).
MAX_READ_REGISTERS = 125  # FC3 / FC4
MAX_READ_BITS = 2000  # FC1 / FC2
MAX_ADDRESS = 0xFFFF


class Table(Enum):
    """The four Modbus data tables, with the read function code of each."""

    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bit(self) -> bool:
        """Bit tables answer one 0/1 per address; register tables 16 bits per address."""
        return self in (Table.COIL, Table.DISCRETE)

    @property
    def function_code(self) -> int:
        return _FUNCTION_CODES[self]

    @property
    def limit(self) -> int:
        """The most addresses one read request of this table may cover."""
        return MAX_READ_BITS if self.is_bit else MAX_READ_REGISTERS


_FUNCTION_CODES = {Table.COIL: 1, Table.DISCRETE: 2, Table.HOLDING: 3, Table.INPUT: 4}


class DataType(IntEnum):
    """Value types; the integer is the type code the C decoder switches on (GG_DT_*)."""

    U16 = 0
    I16 = 1
    U32 = 2
    I32 = 3
    U64 = 4
    I64 = 5
    F32 = 6
    F64 = 7
    BIT = 8  # one bit (0..15) of one register
    BOOL = 9  # one coil or discrete input; decoded like U16 from a 0/1 "register"
    STRING = 10  # N registers of ASCII; decoded in Python, never a numeric value

    @property
    def words(self) -> int:
        """Registers a value of this type spans (0 for STRING: its length is per point)."""
        return _WORDS[self]

    @property
    def is_numeric(self) -> bool:
        return self is not DataType.STRING

    @property
    def label(self) -> str:
        """The spelling used in TOML maps."""
        return self.name.lower()


_WORDS = {
    DataType.U16: 1,
    DataType.I16: 1,
    DataType.U32: 2,
    DataType.I32: 2,
    DataType.U64: 4,
    DataType.I64: 4,
    DataType.F32: 2,
    DataType.F64: 4,
    DataType.BIT: 1,
    DataType.BOOL: 1,
    DataType.STRING: 0,
}

TYPES_BY_LABEL: dict[str, DataType] = {t.label: t for t in DataType}


class ByteOrder(IntEnum):
    """Byte and word order of a multi-register value; the integer is the C order code.

    Letters name the bytes of the value from most to least significant as they appear on the
    wire. A register value r is (first byte << 8) | second byte, as pymodbus returns it.
    ABCD: words high-first, bytes as sent (the Modbus standard). CDAB: words low-first.
    BADC: bytes swapped in each word, words high-first. DCBA: both (little-endian).
    """

    ABCD = 0
    CDAB = 1
    BADC = 2
    DCBA = 3

    @property
    def swaps_bytes(self) -> bool:
        return self in (ByteOrder.BADC, ByteOrder.DCBA)

    @property
    def swaps_words(self) -> bool:
        return self in (ByteOrder.CDAB, ByteOrder.DCBA)


@dataclass(frozen=True)
class RegisterPoint:
    """One validated register-map entry.

    ``address`` is the 0-based protocol address (30001 in a vendor's 1-based input-register
    numbering is address 0). ``length`` is the register count of a STRING point and 1 otherwise
    for bit tables; numeric register types take their length from the type.
    """

    name: str
    table: Table
    address: int
    type: DataType
    order: ByteOrder = ByteOrder.ABCD
    bit: int = 0
    length: int = 0  # registers of a STRING point; ignored for other types
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    low: float | None = None
    high: float | None = None
    deadband: float = 0.0
    # The plausible range: a decoded value outside it is BAD (a device fault, a wrong map), not
    # a reading. None is unbounded on that side.
    valid_min: float | None = None
    valid_max: float | None = None

    @property
    def count(self) -> int:
        """Addresses (registers or bits) this point occupies in its table."""
        if self.type is DataType.STRING:
            return self.length
        return self.type.words

    @property
    def end(self) -> int:
        """One past the last address this point occupies."""
        return self.address + self.count

    @property
    def spec(self) -> PointSpec:
        return PointSpec(self.name, self.unit, self.low, self.high, self.deadband)
