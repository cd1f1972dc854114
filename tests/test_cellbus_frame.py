"""Cellbus framing: the CRC against its catalogue check value, and the parser under hypothesis.

The parser must survive any byte stream split anywhere, never hand out a frame whose CRC is
wrong, and recover every valid frame embedded in garbage.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.cellbus.frame import (
    MAX_PAYLOAD,
    SOF,
    CrcFailure,
    Frame,
    FrameParser,
    crc16,
    encode,
)


def crc16_bitwise(data: bytes) -> int:
    """CRC-16/MODBUS written the slow way, from its definition (reflected poly 0xA001)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def test_crc_check_value_of_the_catalogue() -> None:
    # The CRC catalogue's check value for CRC-16/MODBUS over the ASCII string "123456789".
    assert crc16(b"123456789") == 0x4B37


def test_frame_wire_image_by_hand() -> None:
    # READ_SAMPLE (0x07) to board 3, no payload: CRC over 03 07 00, low byte first.
    crc = crc16_bitwise(b"\x03\x07\x00")
    assert encode(3, 0x07) == bytes([0xA5, 0x03, 0x07, 0x00]) + struct.pack("<H", crc)
    assert encode(3, 0x07) == bytes.fromhex("a5030700") + crc.to_bytes(2, "little")


@given(st.binary(max_size=64))
def test_table_crc_equals_bitwise_crc(data: bytes) -> None:
    assert crc16(data) == crc16_bitwise(data)


frames_st = st.builds(
    Frame,
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=MAX_PAYLOAD).map(bytes),
)


def feed_split(stream: bytes, cuts: list[int]) -> tuple[FrameParser, list[Frame | CrcFailure]]:
    parser = FrameParser()
    out: list[Frame | CrcFailure] = []
    last = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        out += parser.feed(stream[last:cut])
        last = max(last, cut)
    return parser, out


@settings(max_examples=300)
@given(st.binary(max_size=600), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_stream_split_anywhere_yields_only_valid_frames(stream: bytes, cuts: list[int]) -> None:
    parser, out = feed_split(stream, cuts)
    for item in out:
        if isinstance(item, Frame):
            wire = item.encode()
            assert wire in stream  # verbatim, so its CRC is the one on the wire
            assert crc16(wire[1:-2]) == int.from_bytes(wire[-2:], "little")
    assert parser.pending <= len(stream)


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.binary(max_size=40), frames_st), min_size=1, max_size=6),
    st.binary(max_size=40),
    st.lists(st.integers(0, 10_000), max_size=12),
)
def test_valid_frames_embedded_in_garbage_are_all_recovered(
    pieces: list[tuple[bytes, Frame]], tail: bytes, cuts: list[int]
) -> None:
    # Garbage has no start byte here: a stray 0xA5 followed by a length byte that reaches past
    # the end of the stream would hold the *last* frame until more bytes come, which a line
    # owner resolves with its timeout; that case has its own test below.
    stream = b"".join(g.replace(bytes([SOF]), b"\x00") + f.encode() for g, f in pieces)
    stream += tail.replace(bytes([SOF]), b"\x00")
    _, out = feed_split(stream, cuts)
    got = [x for x in out if isinstance(x, Frame)]
    assert got == [f for _, f in pieces]


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=40), frames_st, st.lists(st.integers(0, 10_000), max_size=8))
def test_a_stray_start_byte_does_not_swallow_the_next_frame(
    junk: bytes, frame: Frame, cuts: list[int]
) -> None:
    # A start byte and a long length in the noise: the candidate is incomplete when the real
    # frame has arrived whole, and the real frame wins because its CRC checks.
    stream = bytes([SOF, 1, 2, MAX_PAYLOAD]) + junk + frame.encode()
    _, out = feed_split(stream, cuts)
    assert [x for x in out if isinstance(x, Frame)][-1:] == [frame]


def test_corrupted_frame_is_counted_and_the_next_one_recovered() -> None:
    good = encode(2, 0x87, bytes(range(40)))
    bad = bytearray(good)
    bad[10] ^= 0x10
    parser = FrameParser()
    out = parser.feed(bytes(bad) + good)
    assert out[0] == CrcFailure(2, 0x87, 40)
    assert out[-1] == Frame(2, 0x87, bytes(range(40)))
    assert parser.crc_errors == 1
    assert parser.frames == 1


def test_short_frame_is_held_then_dropped_by_reset() -> None:
    parser = FrameParser()
    assert parser.feed(encode(1, 0x82, b"abc")[:-3]) == []
    assert parser.pending == 6
    assert parser.reset() == 6
    assert parser.feed(encode(1, 0x82, b"abc")) == [Frame(1, 0x82, b"abc")]
