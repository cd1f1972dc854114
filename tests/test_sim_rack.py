"""The rack simulator's truth model against closed-form references, and its faults.

References are written out here from first principles (coulomb counting, the RC step response,
V/R bleed current), not taken from the simulator's own code.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from drivers.cellbus import protocol as p
from drivers.cellbus.frame import Frame, FrameParser, encode
from gateway.sim.cells import SOC_GRID, Cells, Chemistry, Spread, ocv
from gateway.sim.rack import Profile, RackSim, RackSpec, Segment

NO_SPREAD = Spread(capacity=0.0, resistance=0.0, soc=0.0, self_discharge=0.0)


def small(chemistry: Chemistry = Chemistry.LFP, **kw: object) -> RackSim:
    spec = RackSpec(lines=1, boards_per_line=2, chemistry=chemistry, **kw)  # type: ignore[arg-type]
    return RackSim(spec)


@pytest.mark.parametrize("chemistry", list(Chemistry))
def test_coulomb_counting_matches_charge_over_capacity(chemistry: Chemistry) -> None:
    sim = small(chemistry, soc0=0.8)
    soc0 = sim.soc
    cap = sim.cells.capacity_as.copy()
    leak = sim.cells.self_discharge_a.copy()
    amps, hours = 40.0, 1.0
    for _ in range(3600):
        sim.step(1.0, amps)
    expected = soc0 - (amps + leak) * hours * 3600 / cap
    np.testing.assert_allclose(sim.soc, expected, rtol=0, atol=1e-9)


def test_rc_step_response_is_exact_and_independent_of_step_size() -> None:
    rng = np.random.default_rng(0)
    a = Cells(3, Chemistry.NMC, soc0=0.6, rng=rng, spread=NO_SPREAD)
    b = Cells(3, Chemistry.NMC, soc0=0.6, rng=np.random.default_rng(0), spread=NO_SPREAD)
    a.self_discharge_a[:] = b.self_discharge_a[:] = 0.0
    amps, t = 50.0, 120.0
    for _ in range(120):
        a.step(1.0, amps)
    for _ in range(1200):
        b.step(0.1, amps)
    par = a.params
    soc = 0.6 - amps * t / (par.capacity_ah * 3600)
    v_ref = (
        np.interp(soc, SOC_GRID, ocv(Chemistry.NMC, np.array(SOC_GRID)))
        - amps * par.r0
        - amps * par.r1 * (1 - math.exp(-t / par.tau1))
        - amps * par.r2 * (1 - math.exp(-t / par.tau2))
    )
    np.testing.assert_allclose(a.terminal(), v_ref, atol=1e-9)
    np.testing.assert_allclose(b.terminal(), a.terminal(), atol=1e-9)


def test_lfp_hysteresis_separates_charge_and_discharge_branches() -> None:
    rng = np.random.default_rng(1)
    up = Cells(1, Chemistry.LFP, soc0=0.3, rng=rng, spread=NO_SPREAD)
    down = Cells(1, Chemistry.LFP, soc0=0.7, rng=rng, spread=NO_SPREAD)
    for _ in range(720):  # 0.2 of SOC at 56 A (C/5), then rest for the RC pairs to settle
        up.step(5.0, -56.0)
        down.step(5.0, 56.0)
    for _ in range(720):
        up.step(5.0, 0.0)
        down.step(5.0, 0.0)
    assert up.soc[0] == pytest.approx(down.soc[0], abs=1e-3)
    gap = float(up.terminal()[0] - down.terminal()[0])
    assert 0.025 < gap < 0.031  # 2 x 15 mV band on the plateau
    n_up = Cells(1, Chemistry.NMC, soc0=0.3, rng=rng, spread=NO_SPREAD)
    n_up.step(3600.0, -0.2 * 94.0)
    assert n_up.h[0] == 0.0  # NMC: no hysteresis modelled


def test_cell_to_cell_spread_has_the_configured_size() -> None:
    sim = RackSim(RackSpec(seed=7))  # 1,400 cells
    c = sim.cells
    cap = c.capacity_as / c.capacity_as.mean()
    res = c.r0 / c.r0.mean()
    assert 0.012 < cap.std() < 0.018
    assert 0.06 < res.std() < 0.08
    assert 0.02 < sim.soc.std() < 0.03
    assert abs(sim.soc.mean() - 0.5) < 0.005


def test_afe_quantisation_and_noise() -> None:
    sim = small()
    truth = sim.cells.terminal()
    reads = np.stack([sim.measure().cell_v for _ in range(400)])
    codes = reads / p.CELL_LSB_V
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-6)  # 100 µV steps
    err = reads - truth
    assert abs(err.mean()) < 30e-6
    assert 250e-6 < err.std() < 350e-6  # 300 µV noise + LSB/sqrt(12)


def test_bleed_removes_v_over_r_and_stops_after_the_timer() -> None:
    sim = small(soc0=0.5)
    sim.cells.self_discharge_a[:] = 0.0
    frame = Frame(1, p.Command.SET_BALANCE, p.encode_balance(0b1000, 600.0))
    reply = sim.handle(0, frame)
    assert reply == encode(1, p.Command.SET_BALANCE | p.REPLY, frame.payload)
    soc0 = sim.soc
    v = sim.cells.terminal()[3]
    for _ in range(100):
        sim.step(10.0, 0.0)  # 1000 s: the bleed runs 600 s of it
    removed_ah = (soc0 - sim.soc) * sim.cells.capacity_as / 3600
    assert removed_ah[3] == pytest.approx(v / 33.0 * 600 / 3600, rel=0.01)
    assert np.delete(removed_ah, 3) == pytest.approx(0.0, abs=1e-12)
    assert not sim.bleeding().any()
    st = p.Status.decode(sim.status(0).encode())
    assert st.balancing == 0 and st.faults & p.Fault.BALANCE_TIMEOUT


def test_hot_board_cuts_its_bleeding() -> None:
    sim = small()
    sim.handle(0, Frame(2, p.Command.SET_BALANCE, p.encode_balance(0b1, 60.0)))
    assert sim.bleeding()[14]
    sim.set_overtemp(1, 50.0)
    assert not sim.bleeding().any()
    assert sim.status(1).faults & p.Fault.OVER_TEMPERATURE


def test_weak_and_leaky_cells_drift_away() -> None:
    sim = small(soc0=0.9, spread=NO_SPREAD)
    sim.weak_cell(5, 0.8)
    sim.leaky_cell(9, 0.10)  # 10 % per day
    soc0 = sim.soc
    sim.profile = Profile([Segment(7200.0, 28.0)])
    sim.run(7200.0, dt=10.0)
    drop = soc0 - sim.soc
    others = np.delete(drop, [5, 9])
    assert drop[5] == pytest.approx(others.mean() / 0.8, rel=0.05)
    assert drop[9] - others.mean() == pytest.approx(0.10 * 7200 / 86400, rel=0.05)


def test_profile_day_covers_charge_discharge_rest_and_pulses() -> None:
    prof = Profile.day(280.0, seed=2)
    assert prof.period == pytest.approx(86400.0, rel=0.01)
    t = np.arange(0, prof.period, 1.0)
    i = np.array([prof(x) for x in t])
    assert (i == -70.0).sum() >= 5400 and (i == 70.0).sum() >= 5400
    assert (i == 0.0).sum() > 3 * 3600
    pulses = np.unique(i[(i != 0) & (np.abs(i) != 70.0)])
    assert pulses.size > 50
    assert abs(i.sum() / 3600) < 0.1 * 280  # net charge per day within 10 % of capacity


def test_protocol_handler_answers_as_boards_do() -> None:
    sim = small()
    parser = FrameParser()
    assert sim.handle(0, Frame(0xFF, p.Command.SAMPLE_NOW, b"\x07")) is None
    (frame,) = parser.feed(sim.handle(0, Frame(2, p.Command.READ_SAMPLE, b"")) or b"")
    assert isinstance(frame, Frame) and frame.address == 2
    sample = p.decode_sample(frame.payload, 14, 4)
    assert sample.status.seq == 7
    np.testing.assert_array_equal(sample.cells, sim.latched_cells[1])
    (cells,) = parser.feed(sim.handle(0, Frame(2, p.Command.READ_CELLS, b"")) or b"")
    assert isinstance(cells, Frame)
    np.testing.assert_array_equal(p.decode_cells(cells.payload, 14)[1], sim.latched_cells[1])
    (ident,) = parser.feed(sim.handle(0, Frame(1, p.Command.IDENTIFY, b"")) or b"")
    assert isinstance(ident, Frame) and p.Identity.decode(ident.payload).n_cells == 14
    (refused,) = parser.feed(sim.handle(0, Frame(1, 0x3E, b"")) or b"")
    assert isinstance(refused, Frame)
    assert refused.command == 0x3E | p.REFUSAL and refused.payload == bytes(
        [p.Refusal.UNKNOWN_COMMAND]
    )
    assert sim.handle(0, Frame(3, p.Command.READ_SAMPLE, b"")) is None  # no board 3 on the line
    sim.set_silent(0)
    assert sim.handle(0, Frame(1, p.Command.READ_SAMPLE, b"")) is None


def test_faster_than_real_time_at_rack_scale() -> None:
    sim = RackSim(RackSpec(), Profile.day(280.0))  # 1,400 cells
    t0 = time.perf_counter()
    sim.run(3600.0, dt=1.0)
    took = time.perf_counter() - t0
    assert sim.t == pytest.approx(3600.0)
    assert took < 10.0, f"one simulated hour took {took:.1f} s"  # > 360 x real time
