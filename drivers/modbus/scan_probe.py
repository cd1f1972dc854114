"""The probe table of ``gridgate scan modbus --probe``: every register in every reading.

A technician with a meter and no trustworthy manual looks for the row where a known quantity
(230 V, 50 Hz) appears: its column gives the type and its order the ``order`` key of the map.
Rows per address: the raw word, u16, i16 and two ASCII characters, then f32, i32 and u32 of
this register and the next in the four orders (:class:`~drivers.modbus.types.ByteOrder`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence

from drivers.modbus.types import ByteOrder

HEADER = (
    f"{'address':>7}  {'hex':>6}  {'u16':>5}  {'i16':>6}  {'ascii':<6}  {'order':<5}  "
    f"{'f32':>14}  {'i32':>11}  {'u32':>10}"
)


def words_in_order(first: int, second: int, order: ByteOrder) -> bytes:
    """The four bytes of a 32-bit value, most significant first, read in ``order``."""
    a, b = (second, first) if order.swaps_words else (first, second)
    if order.swaps_bytes:
        a, b = _swap(a), _swap(b)
    return struct.pack(">HH", a, b)


def probe_lines(start: int, regs: Sequence[int]) -> Iterator[str]:
    """The header and four lines per register (one per order; the 32-bit columns are blank on
    the last register, which has no next one)."""
    yield HEADER
    words = [int(r) & 0xFFFF for r in regs]
    for i, word in enumerate(words):
        signed = word - 0x10000 if word & 0x8000 else word
        head = f"{start + i:>7}  0x{word:04X}  {word:>5}  {signed:>6}  {_ascii(word):<6}"
        for k, order in enumerate(ByteOrder):
            lead = head if k == 0 else " " * len(head)
            if i + 1 >= len(words):
                yield f"{lead}  {order.name:<5}  {'-':>14}  {'-':>11}  {'-':>10}".rstrip()
                continue
            raw = words_in_order(word, words[i + 1], order)
            (f32,) = struct.unpack(">f", raw)
            (i32,) = struct.unpack(">i", raw)
            (u32,) = struct.unpack(">I", raw)
            yield f"{lead}  {order.name:<5}  {_float(f32):>14}  {i32:>11}  {u32:>10}"


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _ascii(word: int) -> str:
    """Two characters, quoted; anything not printable ASCII is a dot (a device's junk must not
    reach the terminal as a control sequence)."""
    chars = "".join(chr(c) if 0x20 <= c < 0x7F else "." for c in (word >> 8, word & 0xFF))
    return f'"{chars}"'


def _float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.7g}"
