"""Serves a :class:`~gateway.sim.rack.RackSim` on pseudo-terminals, one per cellbus line.

The driver opens the slave path (``/dev/pts/N``) as it would a ``/dev/ttyUSB0``. A pty moves
bytes as fast as the kernel copies them: it does not enforce the baud rate, so timing measured
here is the software's, not the wire's (the bus budget in ``docs/cellbus.md`` is the wire's).

Noise is injected on a line's replies (one flipped bit after the header, which CRC-16 always
detects), as garbage bytes between frames, and as requests lost on the way in (the board never
answers). The counts of what was injected are kept so tests can compare them with the driver's.

``python -m gateway.sim.rack_server --lines 4 --boards 25`` runs it as a process and prints one
JSON line with the pty paths; it stops on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import tty
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from drivers.cellbus.frame import HEADER_LEN, SOF, Frame, FrameParser
from gateway.sim.cells import Chemistry
from gateway.sim.rack import Profile, RackSim, RackSpec

log = logging.getLogger(__name__)

_TICK = 0.05  # real seconds between background steps of the simulated time


@dataclass
class LineNoise:
    reply_corrupt: float = 0.0  # probability a reply gets one bit flipped after its header
    garbage: float = 0.0  # probability of 1-8 noise bytes before a reply
    request_lost: float = 0.0  # probability a request is not heard at all


@dataclass
class LineCounters:
    requests: int = 0
    replies: int = 0
    corrupted: int = 0
    garbage_bursts: int = 0
    lost: int = 0


class _PtyLine:
    def __init__(self, index: int) -> None:
        self.index = index
        self.master, self.slave = os.openpty()
        # Raw on both ends before the driver opens it: no echo, no line discipline.
        tty.setraw(self.slave)
        tty.setraw(self.master)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.parser = FrameParser()
        self.noise = LineNoise()
        self.counters = LineCounters()

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class RackServer:
    """Owns the ptys and the simulated time; ``speed`` simulated seconds per real second."""

    def __init__(self, sim: RackSim, *, speed: float = 1.0, seed: int = 1) -> None:
        self.sim = sim
        self.speed = speed
        self._rng = np.random.default_rng(seed)
        self._lines = [_PtyLine(i) for i in range(sim.spec.lines)]
        self._t0 = 0.0
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def paths(self) -> list[str]:
        return [line.path for line in self._lines]

    def noise(self, line: int) -> LineNoise:
        return self._lines[line].noise

    def counters(self, line: int) -> LineCounters:
        return self._lines[line].counters

    async def __aenter__(self) -> RackServer:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0 = time.monotonic() - self.sim.t / self.speed
        for line in self._lines:
            self._loop.add_reader(line.master, self._on_readable, line)
        self._ticker = self._loop.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for line in self._lines:
            if self._loop is not None:
                self._loop.remove_reader(line.master)
            line.close()

    def sync(self) -> None:
        """Bring the simulated time up to the wall clock (times ``speed``)."""
        target = (time.monotonic() - self._t0) * self.speed
        while self.sim.t < target - 1e-9:
            self.sim.step(min(target - self.sim.t, 1.0))

    async def _tick(self) -> None:
        while True:
            self.sync()
            await asyncio.sleep(_TICK)

    def _on_readable(self, line: _PtyLine) -> None:
        try:
            data = os.read(line.master, 4096)
        except BlockingIOError:
            return
        except OSError:  # EIO: nobody holds the slave open; our own slave fd prevents that
            return
        for item in line.parser.feed(data):
            if isinstance(item, Frame):
                self._answer(line, item)

    def _answer(self, line: _PtyLine, frame: Frame) -> None:
        line.counters.requests += 1
        noise, rng = line.noise, self._rng
        if noise.request_lost and rng.random() < noise.request_lost:
            line.counters.lost += 1
            if frame.address == 0xFF:
                self.sim.missed_broadcast(line.index)
            return
        if frame.address == 0xFF or frame.command == 0x05:
            self.sync()  # a sample or a bleed change happens at "now"
        reply = self.sim.handle(line.index, frame)
        if reply is None:
            return
        out = bytearray(reply)
        if noise.reply_corrupt and rng.random() < noise.reply_corrupt:
            pos = int(rng.integers(HEADER_LEN, len(out)))
            out[pos] ^= 1 << int(rng.integers(0, 8))
            line.counters.corrupted += 1
        if noise.garbage and rng.random() < noise.garbage:
            junk = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8)
            junk[junk == SOF] = 0x5A
            out[:0] = junk.tobytes()
            line.counters.garbage_bursts += 1
        line.counters.replies += 1
        try:
            os.write(line.master, out)
        except OSError as exc:  # a full pty buffer: the reply is lost, as on a real bus
            log.warning("rack sim line %d: reply dropped: %s", line.index, exc)


async def _serve(args: argparse.Namespace) -> None:
    spec = RackSpec(
        lines=args.lines,
        boards_per_line=args.boards,
        cells_per_board=args.cells,
        temps_per_board=args.temps,
        chemistry=Chemistry(args.chemistry),
        seed=args.seed,
    )
    sim = RackSim(spec, Profile.day(280.0 if spec.chemistry is Chemistry.LFP else 94.0))
    async with RackServer(sim, speed=args.speed) as server:
        for i in range(spec.lines):
            server.noise(i).reply_corrupt = args.noise
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(0, 512) else None)
        for fault in args.fault:
            loop.call_later(fault.after_s, fault.apply, sim)
        print(json.dumps({"paths": server.paths}), flush=True)
        await stop.wait()
        counters = [vars(server.counters(i)) for i in range(spec.lines)]
        print(json.dumps({"counters": counters}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=4)
    parser.add_argument("--boards", type=int, default=25)
    parser.add_argument("--cells", type=int, default=14)
    parser.add_argument("--temps", type=int, default=4)
    parser.add_argument("--chemistry", choices=[c.value for c in Chemistry], default="lfp")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--noise", type=float, default=0.0, help="reply corruption probability")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND:INDEX[:DELTA_C]:AFTER_S",
        help="after AFTER_S wall seconds: open_wire:CELL (a sense wire comes loose) or "
        "overtemp:BOARD:DELTA_C (a board's sensors read DELTA_C hotter); repeatable",
    )
    asyncio.run(_serve(parser.parse_args(argv)))


@dataclass(frozen=True)
class _Fault:
    kind: str
    index: int
    delta_c: float
    after_s: float

    def apply(self, sim: RackSim) -> None:
        if self.kind == "open_wire":
            sim.set_open_wire(self.index)
        else:
            sim.set_overtemp(self.index, self.delta_c)


def _fault(text: str) -> _Fault:
    parts = text.split(":")
    try:
        if parts[0] == "open_wire" and len(parts) == 3:
            return _Fault("open_wire", int(parts[1]), 0.0, float(parts[2]))
        if parts[0] == "overtemp" and len(parts) == 4:
            return _Fault("overtemp", int(parts[1]), float(parts[2]), float(parts[3]))
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"{text!r}: expected open_wire:CELL:AFTER_S or overtemp:BOARD:DELTA_C:AFTER_S"
    )


if __name__ == "__main__":
    main()
