"""The rack-wide vectorised decode against a board-by-board reference written in plain Python."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.cellbus import protocol as p
from drivers.cellbus.rack_decode import RackDecoder
from gateway.core.model import Quality

GOOD, UNCERTAIN, BAD = int(Quality.GOOD), int(Quality.UNCERTAIN), int(Quality.BAD)


def reference(
    boards: list[tuple[int, int]], payloads: list[bytes | None]
) -> dict[str, list[float]]:
    """What the driver decoded board by board before: the spec's rules, one channel at a time."""
    out: dict[str, list[float]] = {
        k: []
        for k in (
            "cell_v",
            "cell_q",
            "temp_c",
            "temp_q",
            "faults",
            "open_wire",
            "balancing",
            "balance_left",
        )
    }
    for (n, k), payload in zip(boards, payloads, strict=True):
        if payload is None:
            out["cell_v"] += [math.nan] * n
            out["cell_q"] += [BAD] * n
            out["temp_c"] += [math.nan] * k
            out["temp_q"] += [BAD] * k
            out["faults"].append(0)
            out["open_wire"].append(0)
            out["balancing"].append(0)
            out["balance_left"].append(0.0)
            continue
        sample = p.decode_sample(payload, n, k)
        status = sample.status
        afe = bool(status.faults & p.Fault.AFE_FAULT)
        for ch in range(n):
            code = int(sample.cells[ch])
            valid = code != p.CELL_INVALID
            q = GOOD if valid and not afe else BAD
            if valid and status.open_wire >> ch & 1:
                q = max(q, UNCERTAIN)
            out["cell_v"].append(code * p.CELL_LSB_V if valid and not afe else math.nan)
            out["cell_q"].append(q)
        for ch in range(k):
            code = int(sample.temps[ch])
            valid = code != p.TEMP_INVALID
            out["temp_c"].append(code * p.TEMP_LSB_C if valid else math.nan)
            out["temp_q"].append(GOOD if valid else BAD)
        out["faults"].append(status.faults)
        out["open_wire"].append(status.open_wire)
        out["balancing"].append(status.balancing)
        out["balance_left"].append(status.balance_left)
    return out


@st.composite
def racks(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[bytes | None]]:
    n_boards = draw(st.integers(0, 6))
    boards: list[tuple[int, int]] = []
    payloads: list[bytes | None] = []
    for _ in range(n_boards):
        n = draw(st.integers(1, p.MAX_CELLS))
        k = draw(st.integers(0, p.MAX_TEMPS))
        boards.append((n, k))
        if draw(st.booleans()) and draw(st.booleans()):
            payloads.append(None)  # did not answer
            continue
        cell = st.one_of(st.just(p.CELL_INVALID), st.integers(0, 0xFFFF))
        temp = st.one_of(st.just(p.TEMP_INVALID), st.integers(-0x8000, 0x7FFF))
        cells = np.array(draw(st.lists(cell, min_size=n, max_size=n)), dtype=np.uint16)
        temps = np.array(draw(st.lists(temp, min_size=k, max_size=k)), dtype=np.int16)
        status = p.Status(
            seq=draw(st.integers(0, 255)),
            faults=draw(st.sampled_from([0, int(p.Fault.AFE_FAULT), 0xFFFF, 0x0013])),
            open_wire=draw(st.integers(0, 0xFFFF)),
            balancing=draw(st.integers(0, 0xFFFF)),
            balance_left=draw(st.integers(0, 0xFFFF)) * p.BALANCE_LSB_S,
        )
        payloads.append(p.encode_sample(status, cells, temps))
    return boards, payloads


def _same(got: npt.NDArray[Any], want: list[float]) -> None:
    # Bit for bit, NaN where NaN: the kernel and the alarms see exactly what they saw before.
    np.testing.assert_array_equal(got, np.array(want, dtype=got.dtype))


@settings(max_examples=300, deadline=None)
@given(racks())
def test_vectorised_decode_equals_board_by_board(
    rack: tuple[list[tuple[int, int]], list[bytes | None]],
) -> None:
    boards, payloads = rack
    decoder = RackDecoder(boards)
    raw = decoder.blank()
    for b, payload in enumerate(payloads):
        if payload is not None:
            assert len(payload) == decoder.sizes[b]
            raw[decoder.offsets[b] : decoder.offsets[b] + len(payload)] = payload
    got = decoder.decode(raw)
    want = reference(boards, payloads)
    _same(got.cell_v, want["cell_v"])
    _same(got.cell_q, want["cell_q"])
    _same(got.temp_c, want["temp_c"])
    _same(got.temp_q, want["temp_q"])
    _same(got.faults, want["faults"])
    _same(got.open_wire, want["open_wire"])
    _same(got.balancing, want["balancing"])
    _same(got.balance_left, want["balance_left"])
    assert got.cell_q.dtype == np.uint8 and got.temp_q.dtype == np.uint8
    assert got.faults.dtype == np.uint16 and got.cell_v.dtype == np.float64


def test_payloads_do_not_overlap_and_fit_the_buffer() -> None:
    boards = [(14, 4), (1, 0), (16, 8), (13, 3)]
    decoder = RackDecoder(boards)
    spans = [(o, o + s) for o, s in zip(decoder.offsets, decoder.sizes, strict=True)]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start
    assert spans[-1][1] <= len(decoder.blank())
    assert all(o % 2 == 1 for o in decoder.offsets)  # the 16-bit fields on even bytes


def test_the_buffer_of_a_cycle_is_its_own() -> None:
    decoder = RackDecoder([(2, 1)])
    a = decoder.blank()
    a[:] = bytes(len(a))
    assert np.isnan(decoder.decode(decoder.blank()).cell_v).all()
    decoded = decoder.decode(a)
    a[:] = b"\xff" * len(a)
    assert decoded.cell_v.tolist() == [0.0, 0.0]  # a copy, not a view of the buffer
