"""Register codec: decoder specs, the numpy reference decoder, and the encoder.

The production decoder is the C kernel (:mod:`gateway.native.decode`). The reference decoder
here is written independently of it: it turns registers into big-endian bytes and reads them
back with explicit numpy dtypes (``'>u4'``, ``'>f8'``...), where the C code shifts integers.
Tests require both to agree bit for bit. The encoder is the inverse (value -> registers) and
feeds test servers and the grid simulator.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from drivers.modbus.types import ByteOrder, DataType, RegisterPoint, Table
from gateway.core.model import FloatArray, Quality, QualityArray
from gateway.native.decode import SPEC_DTYPE, SpecArray

# Big-endian numpy dtype of each numeric type's raw value (BIT/BOOL read their register as u16).
_NUMPY_RAW: Final[dict[DataType, np.dtype[Any]]] = {
    DataType.U16: np.dtype(">u2"),
    DataType.I16: np.dtype(">i2"),
    DataType.U32: np.dtype(">u4"),
    DataType.I32: np.dtype(">i4"),
    DataType.U64: np.dtype(">u8"),
    DataType.I64: np.dtype(">i8"),
    DataType.F32: np.dtype(">f4"),
    DataType.F64: np.dtype(">f8"),
    DataType.BIT: np.dtype(">u2"),
    DataType.BOOL: np.dtype(">u2"),
}

# struct format of each type's raw value, for the encoder.
_STRUCT_RAW: Final = {
    DataType.U16: ">H",
    DataType.I16: ">h",
    DataType.U32: ">I",
    DataType.I32: ">i",
    DataType.U64: ">Q",
    DataType.I64: ">q",
    DataType.F32: ">f",
    DataType.F64: ">d",
}

_FLOATS: Final = frozenset({DataType.F32, DataType.F64})


def build_specs(points: Sequence[RegisterPoint], regs: Sequence[int]) -> SpecArray:
    """The C decoder's spec array: point ``i`` starts at register ``regs[i]`` of the block.

    Bound once when a plan is compiled, so a poll does no per-point type dispatch in Python.
    """
    if len(points) != len(regs):
        raise ValueError(f"{len(points)} points but {len(regs)} register offsets")
    specs = np.zeros(len(points), dtype=SPEC_DTYPE)
    for i, (point, reg) in enumerate(zip(points, regs, strict=True)):
        if not point.type.is_numeric:
            raise ValueError(f"point {point.name!r}: {point.type.label} has no numeric decoder")
        specs[i] = (reg, int(point.type), int(point.order), point.bit, 0, point.scale, point.offset)
    return specs


def reference_decode(
    regs: npt.NDArray[np.uint16], specs: SpecArray
) -> tuple[FloatArray, QualityArray]:
    """Decode like ``gg_decode``, in numpy: same values, NaN and quality for every input.

    Raises ValueError where the C kernel returns GG_EINVAL (a spec outside the block, an
    unknown type, order or bit).
    """
    regs = np.ascontiguousarray(regs, dtype=np.uint16)
    n = len(specs)
    out = np.full(n, np.nan, dtype=np.float64)
    quality = np.full(n, Quality.BAD, dtype=np.uint8)
    types = specs["type"]
    orders = specs["order"]
    if n and (types.max() > max(_NUMPY_RAW) or orders.max() > max(ByteOrder)):
        raise ValueError("a spec has an unknown type or order")
    if n and specs["bit"].max() > 15:
        raise ValueError("a spec has a bit index above 15")
    for code in np.unique(types):
        dtype = DataType(int(code))
        for order_code in np.unique(orders[types == code]):
            order = ByteOrder(int(order_code))
            idx = np.flatnonzero((types == code) & (orders == order_code))
            raw = _gather(regs, specs["reg"][idx].astype(np.int64), dtype, order)
            if dtype is DataType.BIT:
                raw = (raw >> specs["bit"][idx].astype(np.uint16)) & 1
            with np.errstate(all="ignore"):
                value = raw.astype(np.float64) * specs["scale"][idx] + specs["offset"][idx]
            good = np.isfinite(value)
            out[idx] = np.where(good, value, np.nan)
            quality[idx] = np.where(good, Quality.GOOD, Quality.BAD)
    return out, quality


def _gather(
    regs: npt.NDArray[np.uint16],
    starts: npt.NDArray[np.int64],
    dtype: DataType,
    order: ByteOrder,
) -> npt.NDArray[np.generic]:
    words = dtype.words
    if len(starts) and (starts.min() < 0 or starts.max() + words > len(regs)):
        raise ValueError(f"a {dtype.label} spec reads beyond the {len(regs)} registers")
    block = regs[starts[:, None] + np.arange(words)]  # one row of registers per point
    if order.swaps_words:
        block = block[:, ::-1]
    if order.swaps_bytes:
        block = block.byteswap()
    wire = np.ascontiguousarray(block).astype(">u2").tobytes()
    big_endian = _NUMPY_RAW[dtype]
    native: npt.NDArray[np.generic] = np.frombuffer(wire, dtype=big_endian).astype(
        big_endian.newbyteorder("=")
    )
    return native


def decode_text(regs: Sequence[int] | npt.NDArray[np.uint16], order: ByteOrder) -> str:
    """ASCII text of a STRING point: high byte first unless the order swaps bytes.

    Stops at the first NUL and drops trailing spaces (devices pad either way); bytes outside
    ASCII become U+FFFD rather than failing the whole poll.
    """
    raw = np.asarray(regs, dtype=np.uint16).astype("<u2" if order.swaps_bytes else ">u2")
    data = raw.tobytes().split(b"\0", 1)[0]
    return data.decode("ascii", errors="replace").rstrip(" ")


def encode_point(point: RegisterPoint, value: float | int) -> list[int]:
    """Registers (or one 0/1 for a coil/discrete point) that decode to ``value``.

    The raw value is ``(value - offset) / scale`` (``value`` itself for an int with no
    scaling, so 64-bit integers are exact), rounded to the nearest integer for integer
    types and to the nearest float32 for f32. A BIT point yields its one register with only its
    own bit set or clear: callers OR the bit points that share a register (see
    :func:`encode_registers`). Raises ValueError when the raw value does not fit the type.
    """
    if point.type is DataType.STRING:
        raise ValueError(f"point {point.name!r} is a string: use encode_text")
    # Unscaled integers stay exact: a u64 counter above 2**53 must not pass through a float.
    exact = point.scale == 1.0 and point.offset == 0.0 and isinstance(value, int)
    raw = value if exact else (value - point.offset) / point.scale
    if point.type in (DataType.BIT, DataType.BOOL):
        state = round(raw) if math.isfinite(raw) else -1
        if state not in (0, 1):
            raise ValueError(f"point {point.name!r}: raw value {raw} is not 0 or 1")
        if point.type is DataType.BOOL:
            return [state]
        word = state << point.bit
        return [_swap(word) if point.order.swaps_bytes else word]
    fmt = _STRUCT_RAW[point.type]
    try:
        if point.type in _FLOATS:
            packed = struct.pack(fmt, raw)
        else:
            if not math.isfinite(raw):
                raise ValueError(f"point {point.name!r}: {value} has no integer raw value")
            packed = struct.pack(fmt, round(raw))
    except (struct.error, OverflowError) as exc:
        raise ValueError(
            f"point {point.name!r}: {value} does not fit {point.type.label}: {exc}"
        ) from exc
    return _to_registers(packed, point.order)


def encode_text(point: RegisterPoint, text: str) -> list[int]:
    """Registers of a STRING point holding ``text``, NUL-padded to the point's length."""
    if point.type is not DataType.STRING:
        raise ValueError(f"point {point.name!r} is {point.type.label}, not a string")
    data = text.encode("ascii")
    size = 2 * point.length
    if len(data) > size:
        raise ValueError(f"point {point.name!r}: {len(data)} bytes do not fit {size}")
    data = data.ljust(size, b"\0")
    words = [(data[i] << 8) | data[i + 1] for i in range(0, size, 2)]
    return [_swap(w) for w in words] if point.order.swaps_bytes else words


def encode_registers(
    points: Sequence[RegisterPoint], values: Mapping[str, float | str]
) -> dict[Table, dict[int, int]]:
    """Per table, address -> register (or 0/1 bit) for the named values of ``points``.

    Points without a value are left out; BIT points sharing a register are OR-ed together.
    """
    tables: dict[Table, dict[int, int]] = {t: {} for t in Table}
    for point in points:
        if point.name not in values:
            continue
        value = values[point.name]
        if point.type is DataType.STRING:
            words = encode_text(point, str(value))
        elif isinstance(value, str):
            raise ValueError(f"point {point.name!r} is numeric, got text {value!r}")
        else:
            words = encode_point(point, value)
        cells = tables[point.table]
        for k, word in enumerate(words):
            address = point.address + k
            if point.type is DataType.BIT:
                cells[address] = cells.get(address, 0) | word
            else:
                cells[address] = word
    return tables


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _to_registers(packed: bytes, order: ByteOrder) -> list[int]:
    words = [(packed[i] << 8) | packed[i + 1] for i in range(0, len(packed), 2)]
    if order.swaps_bytes:
        words = [_swap(w) for w in words]
    if order.swaps_words:
        words.reverse()
    return words
