"""Cellbus rack read, free-running: how many cycles per second the driver reaches over ptys.

Simulator in its own process (4 lines x 25 boards x 14 cells by default). Reports cycles/s,
read time per cycle and the driver's CPU per cycle. A pty moves bytes at memory speed, so the
460,800 baud wire time (31.5 ms per line and cycle, docs/cellbus.md) is *not* included.

    python bench/bench_cellbus.py [--seconds 5] [--boards 25] [--lines 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

import numpy as np

from drivers.cellbus.config import parse_rack
from drivers.cellbus.frame import FrameParser, encode
from drivers.cellbus.rack import CellRack
from gateway.config.issues import IssueSink


async def run(seconds: float, lines: int, boards: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.sim.rack_server", "--lines", str(lines),
         "--boards", str(boards)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        paths = json.loads(proc.stdout.readline())["paths"]
        sink = IssueSink("bench")
        table = [{"name": f"l{i}", "port": x, "boards": boards} for i, x in enumerate(paths)]
        config = parse_rack(sink, {"bus": {"response_timeout": 0.05, "cycle": 1.0}, "lines": table})
        sink.raise_if_any()
        async with CellRack(config) as rack:
            await rack.read()
            d = []
            cpu0, t0 = time.process_time(), time.monotonic()
            while time.monotonic() - t0 < seconds:
                d.append((await rack.read()).duration_s)
            wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        a = np.array(d)
        print(f"| rack | {lines} x {boards} boards x 14 cells over ptys |")
        print("|---|---|")
        print(f"| cycles/s (free running) | {len(a) / wall:.1f} |")
        print(f"| read per cycle median / p99 | {np.median(a) * 1e3:.1f} / "
              f"{np.percentile(a, 99) * 1e3:.1f} ms |")  # fmt: skip
        print(f"| driver CPU per cycle | {cpu / len(a) * 1e3:.2f} ms |")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=10)

    wire = encode(1, 0x87, bytes(45)) * 1000
    parser = FrameParser()
    t = time.perf_counter()
    for i in range(0, len(wire), 64):
        parser.feed(wire[i : i + 64])
    per = (time.perf_counter() - t) / 1000
    print(f"| parse one 51-byte reply (64-byte chunks) | {per * 1e6:.1f} µs |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--lines", type=int, default=4)
    ap.add_argument("--boards", type=int, default=25)
    a = ap.parse_args()
    asyncio.run(run(a.seconds, a.lines, a.boards))


if __name__ == "__main__":
    main()
