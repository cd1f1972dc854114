"""The cellbus driver against hostile boards over real pseudo-terminals, and its frame parser fed
random and mutated streams.

The simulator's replies are replaced, one by one, by a mutation: bits flipped anywhere, a burst,
truncated, trailing junk, a frame with a valid CRC but another address, command or length, an
oversized frame, random bytes, silence, or a reply replayed from an earlier cycle. Every read must
end within the bus timeouts and log no traceback; every value the driver accepts must equal what
the board latched (a corrupt frame never gives a value).

A CRC-16 lets a random corruption through once in 65,536; the mutations here are the kinds it
always detects (up to three flipped bits, bursts up to 16 bits) or that carry a valid CRC and
must be refused on their content, plus random bytes (a fixed seed, so the run is repeatable).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.cellbus import protocol as p
from drivers.cellbus.frame import (
    CRC_LEN,
    HEADER_LEN,
    MAX_PAYLOAD,
    SOF,
    CrcFailure,
    Frame,
    FrameParser,
    encode,
)
from drivers.cellbus.rack import CellRack, RackSample
from gateway.core.model import Quality
from gateway.sim.rack import RackSim, RackSpec
from gateway.sim.rack_server import RackServer
from tests.test_cellbus_driver import TIMEOUT, rack_config
from tests.tracebacks import counting_tracebacks

SPEC = RackSpec(lines=2, boards_per_line=6, cells_per_board=14, temps_per_board=4, seed=3)
KINDS = (
    "valid",
    "bitflip",
    "burst",
    "truncated",
    "trailing_junk",
    "wrong_address",
    "wrong_command",
    "wrong_length",
    "oversized",
    "random",
    "silent",
    "replay",
)
CORRUPT = frozenset(KINDS) - {"valid", "trailing_junk"}


def _parts(reply: bytes) -> tuple[int, int, bytes]:
    return reply[1], reply[2], reply[HEADER_LEN:-CRC_LEN]


def mutate(kind: str, reply: bytes, rng: random.Random, previous: bytes | None) -> bytes | None:
    """``reply`` (a valid wire frame) turned into ``kind``; None for silence."""
    address, command, payload = _parts(reply)
    out = bytearray(reply)
    if kind == "valid":
        return reply
    if kind == "bitflip":
        for pos in rng.sample(range(len(out) * 8), rng.randint(1, 3)):
            out[pos // 8] ^= 1 << (pos % 8)
        return bytes(out)
    if kind == "burst":
        start = rng.randrange(len(out) * 8 - 1)
        width = rng.randint(2, min(16, len(out) * 8 - start))
        for pos in range(start, start + width):
            if pos in (start, start + width - 1) or rng.random() < 0.5:
                out[pos // 8] ^= 1 << (pos % 8)
        return bytes(out)
    if kind == "truncated":
        return bytes(out[: rng.randrange(1, len(out))])
    if kind == "trailing_junk":
        return reply + rng.randbytes(rng.randint(1, 40))
    if kind == "wrong_address":
        return encode((address + rng.randint(1, 254)) % 256, command, payload)
    if kind == "wrong_command":
        return encode(address, (command + rng.randint(1, 254)) % 256, payload)
    if kind == "wrong_length":
        cut = rng.randint(1, len(payload)) if payload and rng.random() < 0.5 else 0
        grown = payload[: len(payload) - cut] if cut else payload + rng.randbytes(rng.randint(1, 8))
        return encode(address, command, grown[:MAX_PAYLOAD])
    if kind == "oversized":
        if rng.random() < 0.5:  # a length byte beyond the protocol's maximum
            return bytes((SOF, address, command, rng.randint(MAX_PAYLOAD + 1, 255))) + payload
        return encode(address, command, rng.randbytes(MAX_PAYLOAD))
    if kind == "random":
        return rng.randbytes(rng.randint(1, 64))
    if kind == "silent":
        return None
    if kind == "replay":
        return previous if previous is not None and previous != reply else None
    raise AssertionError(kind)


@dataclass
class Tally:
    replies: int = 0
    corrupt: int = 0
    reads: int = 0
    accepted_corrupt: int = 0  # boards whose accepted values differ from what they latched
    tracebacks: int = 0
    slowest: float = 0.0


class Hostile:
    """Wraps ``sim.handle``: each reply becomes the next kind drawn from ``choose``."""

    def __init__(self, sim: RackSim, choose: Callable[[], str], rng: random.Random) -> None:
        self.tally = Tally()
        self._handle = sim.handle
        self._choose = choose
        self._rng = rng
        self._previous: dict[int, bytes] = {}
        sim.handle = self.handle  # type: ignore[method-assign]

    def handle(self, line: int, frame: Frame) -> bytes | None:
        reply = self._handle(line, frame)
        if reply is None:
            return None
        kind = self._choose()
        self.tally.replies += 1
        self.tally.corrupt += kind in CORRUPT
        out = mutate(kind, reply, self._rng, self._previous.get(line))
        self._previous[line] = reply
        return out


def wrong_boards(sim: RackSim, s: RackSample) -> int:
    """Boards marked readable whose values are not what they latched (plus a wrong string)."""
    n_cells, n_temps = SPEC.cells_per_board, SPEC.temps_per_board
    cells = s.cell_v.reshape(SPEC.boards, n_cells)
    want = sim.latched_cells.reshape(SPEC.boards, n_cells).astype(np.float64) * p.CELL_LSB_V
    temps = s.temp_c.reshape(SPEC.boards, n_temps)
    want_t = sim.latched_temps.reshape(SPEC.boards, n_temps) * p.TEMP_LSB_C
    wrong = 0
    for b in np.flatnonzero(s.board_ok).tolist():
        same = np.array_equal(cells[b], want[b]) and np.array_equal(temps[b], want_t[b])
        wrong += not (same and sim.latched_seq[b] == s.seq)
    for b in np.flatnonzero(~s.board_ok).tolist():
        bad = s.cell_q.reshape(SPEC.boards, n_cells)[b]
        wrong += not (np.isnan(cells[b]).all() and (bad == Quality.BAD).all())
    if s.string_q == Quality.GOOD:
        latched = sim.string_latched
        wrong += abs(s.current_a - latched.current_a) > 1e-3
        wrong += abs(s.string_v - latched.voltage_v) > 1e-3
    return wrong


async def campaign(choose: Callable[[], str], rng: random.Random, cycles: int) -> Tally:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    sim = RackSim(SPEC)
    config = rack_config(["/dev/unused0", "/dev/unused1"])  # for the timing bound only
    # Worst case per line: every board retried into a timeout, the controller too.
    bound = (
        (SPEC.boards_per_line + 1) * TIMEOUT * (1 + config.bus.retries)
        + config.bus.conversion_time
        + 0.3
    )
    with counting_tracebacks() as tracebacks:
        async with RackServer(sim) as server, CellRack(rack_config(server.paths)) as rack:
            hostile = Hostile(sim, choose, rng)
            tally = hostile.tally
            for _ in range(cycles):
                s = await asyncio.wait_for(rack.read(), bound * 3)
                tally.reads += 1
                tally.slowest = max(tally.slowest, s.duration_s)
                tally.accepted_corrupt += wrong_boards(sim, s)
                assert s.duration_s < bound, (s.duration_s, bound)
    tally.tracebacks = len(errors) + tracebacks.count
    return tally


def test_hostile_boards_through_a_pty_campaign_counts() -> None:
    rng = random.Random(int(os.environ.get("GRIDGATE_FUZZ_SEED", "11")))
    weights = [8 if k == "valid" else (1 if k in ("silent", "truncated") else 3) for k in KINDS]
    cycles = int(os.environ.get("GRIDGATE_FUZZ_CYCLES", "100"))

    def choose() -> str:
        return rng.choices(KINDS, weights)[0]

    tally = asyncio.run(campaign(choose, rng, cycles))
    print(
        f"\ncellbus fuzz: {tally.reads} rack reads, {tally.replies} replies "
        f"({tally.corrupt} corrupt), tracebacks {tally.tracebacks}, values accepted from "
        f"corrupt frames {tally.accepted_corrupt}, slowest read {tally.slowest:.3f} s"
    )
    assert tally.replies > cycles * SPEC.boards
    assert tally.tracebacks == 0
    assert tally.accepted_corrupt == 0


# ----- the parser alone -------------------------------------------------------------------------

_frames = st.builds(
    encode,
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=MAX_PAYLOAD),
)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    """A byte stream of valid frames, noise and mutated frames, split anywhere; the valid ones."""
    parts: list[bytes] = []
    kept: list[bytes] = []
    for _ in range(draw(st.integers(0, 8))):
        frame = draw(_frames)
        how = draw(st.sampled_from(("keep", "flip", "cut", "noise")))
        if how == "flip":
            pos = draw(st.integers(0, len(frame) * 8 - 1))
            frame = bytearray(frame)
            frame[pos // 8] ^= 1 << (pos % 8)
            frame = bytes(frame)
        elif how == "cut":
            frame = frame[: draw(st.integers(0, len(frame) - 1))]
        elif how == "noise":
            frame = draw(st.binary(min_size=1, max_size=64).filter(lambda b: SOF not in b))
        else:
            kept.append(frame)
        parts.append(frame)
    stream = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return chunks, kept


@settings(max_examples=int(os.environ.get("GRIDGATE_FUZZ_EXAMPLES", "300")), deadline=None)
@given(_streams())
def test_parser_never_raises_and_only_yields_frames_that_were_sent(
    case: tuple[list[bytes], list[bytes]],
) -> None:
    chunks, kept = case
    parser = FrameParser()
    stream = b"".join(chunks)
    got: list[bytes] = []
    for chunk in chunks:
        for item in parser.feed(chunk):
            assert isinstance(item, Frame | CrcFailure)
            if isinstance(item, Frame):
                wire = item.encode()
                assert wire in stream  # a frame with a valid CRC that really was sent
                got.append(wire)
    assert parser.pending <= len(stream)
    # Every intact frame comes out, in order, whatever noise (without a start byte) or broken
    # frame came before it.
    it = iter(got)
    assert all(any(g == f for g in it) for f in kept), (kept, got)
