"""Read plans: register maps compiled into merged read requests and a bound decoder.

Compiling does all per-point work once: points are grouped into as few requests as the protocol
and ``max_gap`` allow, and every numeric point gets its row in the C decoder's spec array. A poll
then only copies the answered blocks into one buffer and makes a single C call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from drivers.modbus.codec import build_specs, decode_text
from drivers.modbus.types import MAX_READ_BITS, MAX_READ_REGISTERS, RegisterPoint, Table
from gateway.core.model import FloatArray, PointSpec, Quality, QualityArray
from gateway.native.decode import SpecArray, decode_into

Block = npt.NDArray[np.uint16] | npt.NDArray[np.uint8]

_TABLE_ORDER = {t: i for i, t in enumerate(Table)}


@dataclass(frozen=True)
class ReadRequest:
    """One read: ``count`` registers (FC3/FC4) or bits (FC1/FC2) from ``address``."""

    table: Table
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


class Decoded(NamedTuple):
    """One poll decoded: values and qualities in frame order, the string points' text, and why
    each value the device did send came out BAD (not a number, outside its plausible range)."""

    values: FloatArray
    quality: QualityArray
    strings: dict[str, str]
    rejected: dict[str, str]


@dataclass(frozen=True)
class _StringSlot:
    name: str
    request: int
    reg: int  # index of the first register in the decode buffer
    point: RegisterPoint


@dataclass(frozen=True, eq=False)  # identity equality: fields hold numpy arrays
class ReadPlan:
    """Requests to send and how to turn their answers into one frame.

    ``points`` are the numeric points in frame order (the map's order); ``register_points``
    are their map entries, aligned; ``strings`` names the string points, returned apart.
    """

    requests: tuple[ReadRequest, ...]
    points: tuple[PointSpec, ...]
    register_points: tuple[RegisterPoint, ...]
    strings: tuple[str, ...]
    _specs: SpecArray = field(repr=False)
    _block_starts: tuple[int, ...] = field(repr=False)  # buffer index of each request's block
    _request_points: tuple[npt.NDArray[np.intp], ...] = field(repr=False)
    _string_slots: tuple[_StringSlot, ...] = field(repr=False)
    # Plausible range per numeric point (-inf/inf where the map sets none); None: no point has one.
    _valid: tuple[FloatArray, FloatArray] | None = field(default=None, repr=False)

    @property
    def n_registers(self) -> int:
        """Size of the decode buffer: every request's registers or bits, back to back."""
        return self._block_starts[-1] if self._block_starts else 0

    def decode(
        self, blocks: Sequence[Block | None]
    ) -> tuple[FloatArray, QualityArray, dict[str, str]]:
        """Values (float64), qualities (uint8) and string texts: :meth:`decode_checked` without
        the reasons."""
        values, quality, strings, _rejected = self.decode_checked(blocks)
        return values, quality, strings

    def decode_checked(self, blocks: Sequence[Block | None]) -> Decoded:
        """Decode one poll's blocks into values in frame order, and say why values are BAD.

        ``blocks[i]`` answers ``requests[i]``: uint16 registers, or 0/1 per bit (any integer
        dtype) for coil/discrete requests. ``None``, or a block of the wrong length, makes
        exactly that request's points BAD and NaN (their strings are left out); a value is
        never held over. A value the device sent that is not a finite number, or lies outside
        the point's ``valid_min``..``valid_max``, is BAD and NaN too, with its reason in
        ``rejected``. Limits (``low``/``high``) do not change quality: they are alarm
        thresholds, and a reading beyond them is a real reading.
        """
        if len(blocks) != len(self.requests):
            raise ValueError(f"{len(blocks)} blocks for {len(self.requests)} requests")
        buffer = np.zeros(self.n_registers, dtype=np.uint16)
        failed: list[int] = []
        for i, (request, block) in enumerate(zip(self.requests, blocks, strict=True)):
            if block is None or len(block) != request.count:
                failed.append(i)
                continue
            start = self._block_starts[i]
            buffer[start : start + request.count] = block
        values = np.empty(len(self.points), dtype=np.float64)
        quality = np.empty(len(self.points), dtype=np.uint8)
        decode_into(buffer, self._specs, values, quality)
        answered = np.ones(len(self.points), dtype=bool)
        for i in failed:
            idx = self._request_points[i]
            values[idx] = np.nan
            quality[idx] = Quality.BAD
            answered[idx] = False
        rejected = self._reject(values, quality, answered)
        bad = set(failed)
        strings = {
            slot.name: decode_text(
                buffer[slot.reg : slot.reg + slot.point.length], slot.point.order
            )
            for slot in self._string_slots
            if slot.request not in bad
        }
        return Decoded(values, quality, strings, rejected)

    def _reject(
        self, values: FloatArray, quality: QualityArray, answered: npt.NDArray[np.bool_]
    ) -> dict[str, str]:
        """Mark implausible values BAD (in place); the reason for every answered BAD value."""
        outside = np.zeros(len(values), dtype=bool)
        if self._valid is not None:
            low, high = self._valid
            with np.errstate(invalid="ignore"):
                outside = (quality == Quality.GOOD) & ((values < low) | (values > high))
        not_finite = answered & (quality != Quality.GOOD)
        if not (outside.any() or not_finite.any()):
            return {}
        rejected: dict[str, str] = {}
        for i in np.flatnonzero(not_finite).tolist():
            rejected[self.points[i].name] = "not a finite number (NaN or infinity)"
        for i in np.flatnonzero(outside).tolist():
            p = self.register_points[i]
            unit = f" {p.unit}" if p.unit else ""
            lo = "" if p.valid_min is None else f"{p.valid_min:g}"
            hi = "" if p.valid_max is None else f"{p.valid_max:g}"
            rejected[p.name] = f"{values[i]:g}{unit} outside the plausible range {lo}..{hi}"
        values[outside] = np.nan
        quality[outside] = Quality.BAD
        return rejected


def compile_plan(
    points: Sequence[RegisterPoint],
    max_gap: int = 0,
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
) -> ReadPlan:
    """Merge ``points`` into read requests and bind each point's decoder.

    Per table, points sorted by address join the current request while the unread gap before
    them is at most ``max_gap`` and the request stays within ``max_registers`` (or
    ``max_bits``). ``max_gap`` > 0 reads unmapped addresses in between, which some devices
    refuse with an exception: keep 0 unless the device is known to allow it.

    Raises ValueError for limits outside the protocol's, duplicate names, or a point longer
    than one request may be; maps from :mod:`drivers.modbus.regmap` never have the latter two.
    """
    if not 1 <= max_registers <= MAX_READ_REGISTERS:
        raise ValueError(f"max_registers {max_registers} outside 1..{MAX_READ_REGISTERS}")
    if not 1 <= max_bits <= MAX_READ_BITS:
        raise ValueError(f"max_bits {max_bits} outside 1..{MAX_READ_BITS}")
    if max_gap < 0:
        raise ValueError(f"max_gap {max_gap} must be >= 0")
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate point names: {', '.join(dupes)}")

    requests, owner = _merge(points, max_gap, max_registers, max_bits)
    starts = [0]
    for request in requests:
        starts.append(starts[-1] + request.count)

    numeric = [i for i, p in enumerate(points) if p.type.is_numeric]
    regs = [_buffer_index(points[i], requests[owner[i]], starts[owner[i]]) for i in numeric]
    frame_of_request: list[list[int]] = [[] for _ in requests]
    for frame_index, i in enumerate(numeric):
        frame_of_request[owner[i]].append(frame_index)
    slots = tuple(
        _StringSlot(p.name, owner[i], _buffer_index(p, requests[owner[i]], starts[owner[i]]), p)
        for i, p in enumerate(points)
        if not p.type.is_numeric
    )
    return ReadPlan(
        requests=tuple(requests),
        points=tuple(points[i].spec for i in numeric),
        register_points=tuple(points[i] for i in numeric),
        strings=tuple(s.name for s in slots),
        _specs=build_specs([points[i] for i in numeric], regs),
        _block_starts=tuple(starts),
        _request_points=tuple(np.asarray(f, dtype=np.intp) for f in frame_of_request),
        _string_slots=slots,
        _valid=_valid_ranges([points[i] for i in numeric]),
    )


def _valid_ranges(points: Sequence[RegisterPoint]) -> tuple[FloatArray, FloatArray] | None:
    if all(p.valid_min is None and p.valid_max is None for p in points):
        return None
    inf = float("inf")
    low = np.array([-inf if p.valid_min is None else p.valid_min for p in points], np.float64)
    high = np.array([inf if p.valid_max is None else p.valid_max for p in points], np.float64)
    return low, high


def _merge(
    points: Sequence[RegisterPoint], max_gap: int, max_registers: int, max_bits: int
) -> tuple[list[ReadRequest], list[int]]:
    """Requests in table then address order, and the request index of each point."""
    owner = [0] * len(points)
    requests: list[ReadRequest] = []
    order = sorted(
        range(len(points)),
        key=lambda i: (_TABLE_ORDER[points[i].table], points[i].address, points[i].end),
    )
    table: Table | None = None
    start = end = 0
    for i in order:
        p = points[i]
        limit = max_bits if p.table.is_bit else max_registers
        if p.count > limit:
            raise ValueError(f"point {p.name!r} spans {p.count} addresses, more than {limit}")
        fits = p.table is table and p.address - end <= max_gap and max(end, p.end) - start <= limit
        if fits:
            end = max(end, p.end)
            requests[-1] = ReadRequest(p.table, start, end - start)
        else:
            table, start, end = p.table, p.address, p.end
            requests.append(ReadRequest(p.table, start, end - start))
        owner[i] = len(requests) - 1
    return requests, owner


def _buffer_index(point: RegisterPoint, request: ReadRequest, block_start: int) -> int:
    return block_start + point.address - request.address
