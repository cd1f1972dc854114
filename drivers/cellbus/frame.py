"""Cellbus framing: ``SOF ADDR CMD LEN PAYLOAD CRC16``, and an incremental parser that resyncs.

The CRC is CRC-16/MODBUS (poly 0x8005 reflected = 0xA001, init 0xFFFF, no final xor), sent low
byte first, computed over ADDR..PAYLOAD. It is the CRC the RS-485 world already has tooling for
(every protocol analyser decodes it), and it detects every single, double and odd-count bit error
and every burst up to 16 bits in a frame of this size.

The parser trusts nothing: a length byte can be noise, so a candidate frame that is still
incomplete is abandoned as soon as a later start byte begins a complete frame with a valid CRC
(see :meth:`FrameParser.feed`). That is what keeps one stray ``0xA5`` from swallowing the next
real reply.
"""

from __future__ import annotations

from dataclasses import dataclass

SOF = 0xA5
HEADER_LEN = 4  # SOF, ADDR, CMD, LEN
CRC_LEN = 2
MAX_PAYLOAD = 240
OVERHEAD = HEADER_LEN + CRC_LEN
MAX_FRAME = OVERHEAD + MAX_PAYLOAD
BROADCAST = 0xFF


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS of ``data``; ``crc16(b"123456789") == 0x4B37`` (the catalogue check value)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame whose CRC checked out: who sent it (or is addressed), what, and the payload."""

    address: int
    command: int
    payload: bytes

    def encode(self) -> bytes:
        return encode(self.address, self.command, self.payload)


def encode(address: int, command: int, payload: bytes = b"") -> bytes:
    """The wire image of one frame; ValueError for a field out of its byte range."""
    if not 0 <= address <= 0xFF or not 0 <= command <= 0xFF:
        raise ValueError(f"address {address} or command {command} outside 0..255")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = bytes((address, command, len(payload))) + payload
    crc = crc16(body)
    return bytes((SOF,)) + body + bytes((crc & 0xFF, crc >> 8))


@dataclass(frozen=True, slots=True)
class CrcFailure:
    """A candidate frame, complete by its length byte, whose CRC did not match."""

    address: int
    command: int
    length: int


class FrameParser:
    """Turns a byte stream, split anywhere, into frames whose CRC is right.

    Counters (cumulative, read by the line owner to blame the board in the transaction):
    ``garbage_bytes`` skipped outside any frame, ``crc_errors`` candidates rejected by the CRC,
    ``frames`` accepted.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.garbage_bytes = 0
        self.crc_errors = 0
        self.frames = 0

    @property
    def pending(self) -> int:
        """Bytes held: the start of a frame that has not arrived in full (or unsorted noise)."""
        return len(self._buf)

    def reset(self) -> int:
        """Drop whatever is held (before a new request: it can only be stale); returns its size."""
        dropped = len(self._buf)
        self.garbage_bytes += dropped
        self._buf.clear()
        return dropped

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | CrcFailure]:
        """Consume ``data``; return the frames completed by it (and the CRC failures, in order)."""
        buf = self._buf
        buf += data
        out: list[Frame | CrcFailure] = []
        while buf:
            start = buf.find(SOF)
            if start < 0:
                self._skip(len(buf))
                break
            if start:
                self._skip(start)
            status = self._check_at(0)
            if status is None:  # incomplete: a later complete valid frame proves it was noise
                later = self._later_valid_frame()
                if later is None:
                    break
                self._skip(later)
                continue
            if isinstance(status, Frame):
                del buf[: OVERHEAD + len(status.payload)]
                self.frames += 1
                out.append(status)
            else:
                if status.length <= MAX_PAYLOAD:
                    out.append(status)
                    self.crc_errors += 1
                # Drop only the start byte: a real frame may begin inside the rejected span.
                self._skip(1)
        return out

    def _skip(self, n: int) -> None:
        self.garbage_bytes += n
        del self._buf[:n]

    def _check_at(self, pos: int) -> Frame | CrcFailure | None:
        """Frame, CrcFailure (length > MAX_PAYLOAD is one too), or None while incomplete."""
        buf = self._buf
        if len(buf) - pos < HEADER_LEN:
            return None
        address, command, length = buf[pos + 1], buf[pos + 2], buf[pos + 3]
        if length > MAX_PAYLOAD:
            return CrcFailure(address, command, length)
        end = pos + OVERHEAD + length
        if len(buf) < end:
            return None
        body = memoryview(buf)[pos + 1 : end - CRC_LEN]
        try:
            crc = crc16(body)
        finally:
            body.release()
        if buf[end - 2] != crc & 0xFF or buf[end - 1] != crc >> 8:
            return CrcFailure(address, command, length)
        return Frame(address, command, bytes(buf[pos + HEADER_LEN : end - CRC_LEN]))

    def _later_valid_frame(self) -> int | None:
        buf = self._buf
        pos = buf.find(SOF, 1)
        while pos >= 0:
            if isinstance(self._check_at(pos), Frame):
                return pos
            pos = buf.find(SOF, pos + 1)
        return None
