"""The cellbus driver against the rack simulator over real pseudo-terminals.

The simulator's latched sample is the reference: it is what the boards put on the wire, so
every value the driver accepts must equal it code for code. Noise is injected by the server
(bit flips after the header, garbage bursts, lost requests) and counted there, so the driver's
error counters are checked against an independent count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from drivers.cellbus import protocol as p
from drivers.cellbus.config import RackConfig, parse_rack
from drivers.cellbus.errors import ErrorKind
from drivers.cellbus.rack import CellRack, RackSample
from gateway.config.issues import IssueSink
from gateway.core.model import Quality
from gateway.sim.rack import RackSim, RackSpec
from gateway.sim.rack_server import RackServer

TIMEOUT = 0.05  # generous against a shared 2-core machine; the budget doc uses 10 ms
SPEC = RackSpec(lines=2, boards_per_line=6, cells_per_board=14, temps_per_board=4, seed=3)


def rack_config(paths: list[str], **bus: Any) -> RackConfig:
    sink = IssueSink("test.toml")
    table = {
        "bus": {"response_timeout": TIMEOUT, **bus},
        "lines": [
            {"name": f"l{i}", "port": path, "boards": SPEC.boards_per_line}
            for i, path in enumerate(paths)
        ],
    }
    config = parse_rack(sink, table)
    sink.raise_if_any()
    return config


@dataclass
class Bench:
    sim: RackSim
    server: RackServer
    rack: CellRack


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    sim = RackSim(SPEC)
    async with RackServer(sim) as server, CellRack(rack_config(server.paths)) as rack:
        yield Bench(sim, server, rack)


def expected_cells(sim: RackSim) -> np.ndarray:
    return sim.latched_cells.reshape(-1).astype(np.float64) * p.CELL_LSB_V


def assert_accepted_values_are_the_boards(sim: RackSim, s: RackSample) -> None:
    """Every value marked readable equals what the board latched; the rest is NaN and BAD."""
    cells_ok = np.repeat(s.board_ok, SPEC.cells_per_board)
    np.testing.assert_array_equal(s.cell_v[cells_ok], expected_cells(sim)[cells_ok])
    assert np.isnan(s.cell_v[~cells_ok]).all()
    assert (s.cell_q[~cells_ok] == Quality.BAD).all()
    temps_ok = np.repeat(s.board_ok, SPEC.temps_per_board)
    want_t = sim.latched_temps.reshape(-1) * p.TEMP_LSB_C
    np.testing.assert_array_equal(s.temp_c[temps_ok], want_t[temps_ok])
    assert (sim.latched_seq[s.board_ok] == s.seq).all()


async def test_clean_rack_reads_every_cell_as_latched(bench: Bench) -> None:
    for _ in range(3):
        s = await bench.rack.read()
        assert s.board_ok.all()
        assert_accepted_values_are_the_boards(bench.sim, s)
        assert (s.cell_q == Quality.GOOD).all()
        assert s.cell_v.shape == (SPEC.cells,)
        assert s.temp_c.shape == (SPEC.boards * SPEC.temps_per_board,)
        # Independent of the codec: the AFE reading is within noise of the cells' true voltage.
        assert np.abs(s.cell_v - bench.sim.cells.terminal()).max() < 3e-3
        latched = bench.sim.string_latched
        assert s.string_q == Quality.GOOD
        assert s.current_a == pytest.approx(latched.current_a, abs=1e-3)
        assert s.string_v == pytest.approx(latched.voltage_v, abs=1e-3)
        assert s.string_v == pytest.approx(bench.sim.cells.terminal().sum(), rel=1e-3)
    assert s.errors.sum() == 0
    assert s.controller_errors.sum() == 0


async def test_crc_noise_no_corrupted_value_accepted_every_error_counted(bench: Bench) -> None:
    bench.server.noise(0).reply_corrupt = 0.25
    bench.server.noise(1).garbage = 0.5  # garbage before replies: resync, not an error
    previous = np.zeros_like(bench.rack.errors)
    recovered = 0
    for _ in range(25):
        s = await bench.rack.read()
        assert_accepted_values_are_the_boards(bench.sim, s)
        delta = s.errors - previous
        previous = s.errors
        crc = delta[:, ErrorKind.CRC]
        # Recovery by the next frame: a board with a CRC error is read by its retry, unless the
        # retry was corrupted too (retries = 1 -> two CRC errors and no sample).
        assert ((crc == 0) | s.board_ok | (crc == 2)).all()
        assert not (s.board_ok & (crc == 2)).any()
        recovered += int((s.board_ok & (crc == 1)).sum())
        assert s.duration_s < TIMEOUT  # fail-fast on a CRC error: never waits for a timeout
    corrupted = bench.server.counters(0).corrupted
    assert corrupted > 10
    counted = int(s.errors[:, ErrorKind.CRC].sum() + s.controller_errors[ErrorKind.CRC])
    assert counted == corrupted
    assert recovered > 5
    other = [k for k in ErrorKind if k is not ErrorKind.CRC]
    assert s.errors[:, other].sum() == 0  # garbage on line 1 cost nothing
    assert bench.server.counters(1).garbage_bursts > 10
    assert bench.rack.lines[1].parser.garbage_bytes > 10


async def test_a_silent_board_costs_its_line_one_timeout_only(bench: Bench) -> None:
    await bench.rack.read()
    t0 = time.monotonic()
    clean = await bench.rack.read()
    clean_s = time.monotonic() - t0
    dead = 2  # line 0, address 3: boards after it on the same line must still be read
    bench.sim.set_silent(dead)
    for n in range(1, 4):
        t0 = time.monotonic()
        s = await bench.rack.read()
        took = time.monotonic() - t0
        assert took < clean_s + TIMEOUT + 0.03
        assert took >= TIMEOUT
        assert not s.board_ok[dead]
        assert s.board_ok.sum() == SPEC.boards - 1
        cells = slice(dead * SPEC.cells_per_board, (dead + 1) * SPEC.cells_per_board)
        assert np.isnan(s.cell_v[cells]).all()
        assert (s.cell_q[cells] == Quality.BAD).all()
        assert s.errors[dead, ErrorKind.TIMEOUT] == n  # no retry into silence
        assert_accepted_values_are_the_boards(bench.sim, s)
    assert clean.board_ok.all()
    bench.sim.set_silent(dead, False)
    s = await bench.rack.read()
    assert s.board_ok.all()


async def test_lost_requests_are_timeouts_and_the_line_recovers(bench: Bench) -> None:
    await bench.rack.read()
    bench.server.noise(1).request_lost = 1.0  # line 1 hears nothing, not even SAMPLE_NOW
    t0 = time.monotonic()
    s = await bench.rack.read()
    # Its boards time out one after the other; line 0 is read meanwhile, in parallel.
    assert time.monotonic() - t0 < SPEC.boards_per_line * TIMEOUT + 0.1
    line1 = slice(SPEC.boards_per_line, SPEC.boards)
    assert not s.board_ok[line1].any()
    assert s.board_ok[: SPEC.boards_per_line].all()
    assert (s.errors[line1, ErrorKind.TIMEOUT] == 1).all()
    bench.server.noise(1).request_lost = 0.0
    s = await bench.rack.read()
    assert s.board_ok.all()
    assert_accepted_values_are_the_boards(bench.sim, s)


async def test_a_board_that_missed_sample_now_is_stale_never_an_old_value(bench: Bench) -> None:
    await bench.rack.read()
    original = bench.sim.latch

    def deaf_line0(line: int, seq: int) -> None:  # line 0 loses only the broadcast
        if line == 0:
            bench.sim.missed_broadcast(0)
            return
        original(line, seq)

    bench.sim.latch = deaf_line0  # type: ignore[method-assign]
    s = await bench.rack.read()
    bench.sim.latch = original  # type: ignore[method-assign]
    line0 = slice(0, SPEC.boards_per_line)
    assert (s.errors[line0, ErrorKind.STALE] == 1).all()
    assert not s.board_ok[line0].any()
    assert s.board_ok[SPEC.boards_per_line :].all()
    assert np.isnan(s.cell_v[: SPEC.boards_per_line * SPEC.cells_per_board]).all()
    assert s.controller_errors[ErrorKind.STALE] == 1
    assert np.isnan(s.current_a)
    assert s.string_q == Quality.BAD
    s = await bench.rack.read()
    assert s.board_ok.all()


async def test_balancing_mask_is_applied_and_stops_by_itself(bench: Bench) -> None:
    masks = np.zeros(SPEC.boards, dtype=np.uint16)
    masks[1] = 0b101
    masks[SPEC.boards_per_line + 2] = 1 << 13
    acked = await bench.rack.write_balancing(masks, timeout_s=0.4)
    assert acked.all()
    s = await bench.rack.read()
    np.testing.assert_array_equal(s.balancing, masks)
    assert 0.0 < s.balance_left_s[1] <= 0.4
    bleeding = bench.sim.bleeding()
    assert set(np.flatnonzero(bleeding)) == {14, 16, (SPEC.boards_per_line + 2) * 14 + 13}
    await asyncio.sleep(0.5)
    bench.server.sync()
    s = await bench.rack.read()
    assert not s.balancing.any()
    assert s.faults[1] & p.Fault.BALANCE_TIMEOUT
    assert not bench.sim.bleeding().any()
    with pytest.raises(ValueError, match="bits above"):
        await bench.rack.write_balancing(np.full(SPEC.boards, 1 << 14, dtype=np.uint16), 1.0)


async def test_open_wire_and_over_temperature_reach_the_arrays(bench: Bench) -> None:
    bench.sim.set_open_wire(20)  # board 1, channel 6: channel 6 reads ~0, channel 5 the sum
    bench.sim.set_overtemp(4, 60.0)
    s = await bench.rack.read()
    assert s.cell_v[20] < 0.01
    assert s.cell_v[19] > 6.0
    assert s.cell_q[19] == s.cell_q[20] == Quality.UNCERTAIN
    assert s.open_wire[1] == 0b1100000
    assert s.faults[1] & p.Fault.OPEN_WIRE
    hot = s.temp_c[4 * SPEC.temps_per_board : 5 * SPEC.temps_per_board]
    assert (hot > 80.0).all()
    assert s.faults[4] & p.Fault.OVER_TEMPERATURE
    assert not s.faults[3] & p.Fault.OVER_TEMPERATURE


async def test_identify_reports_channel_counts(bench: Bench) -> None:
    bench.sim.set_silent(0)
    found = await bench.rack.identify()
    assert found[0] is None
    assert all(i is not None and i.n_cells == 14 and i.n_temps == 4 for i in found[1:])
    assert bench.rack.errors[0, ErrorKind.TIMEOUT] == 1


async def test_missing_port_reads_bad_without_raising() -> None:
    config = rack_config(["/dev/nonexistent-cellbus-0", "/dev/nonexistent-cellbus-1"])
    async with CellRack(config) as rack:
        s = await rack.read()
    assert not s.board_ok.any()
    assert np.isnan(s.cell_v).all()
    assert s.errors.sum() == 0  # a missing port is the line's fault, not the boards'
    assert rack.board_of_cell(14 * 7 + 3) == ("l1", 2, 3)


async def test_a_reply_of_the_wrong_length_is_unexpected_and_shifts_no_other_board() -> None:
    """A board configured with 13 cells answers with 14: its reply is refused and counted; every
    other board, before and after it in the rack buffer, still decodes to what it latched."""
    sim = RackSim(SPEC)
    odd = 3
    async with RackServer(sim) as server:
        config = rack_config(server.paths)
        line0 = config.lines[0]
        boards = list(line0.boards)
        boards[odd] = replace(boards[odd], n_cells=SPEC.cells_per_board - 1)
        config = replace(config, lines=(replace(line0, boards=tuple(boards)), *config.lines[1:]))
        async with CellRack(config) as rack:
            for n in range(1, 3):
                s = await rack.read()
                assert s.errors[odd, ErrorKind.UNEXPECTED] == n
                assert s.board_ok.tolist() == [b != odd for b in range(SPEC.boards)]
                want = sim.latched_cells.astype(np.float64) * p.CELL_LSB_V  # [board, cell]
                at = 0
                for b in range(SPEC.boards):
                    n_cells = config.boards[b].n_cells
                    got = s.cell_v[at : at + n_cells]
                    if b == odd:
                        assert np.isnan(got).all()
                        assert (s.cell_q[at : at + n_cells] == Quality.BAD).all()
                    else:
                        np.testing.assert_array_equal(got, want[b])
                        assert (s.cell_q[at : at + n_cells] == Quality.GOOD).all()
                    at += n_cells
                assert at == len(s.cell_v)
