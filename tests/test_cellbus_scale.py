"""The full rack at target scale: 100 boards x 14 cells on 4 ptys, read at 10 Hz.

The simulator runs as its own process (``python -m gateway.sim.rack_server``), so the driver and
the boards do not share an interpreter, as on the real rack. A pty does not enforce the baud
rate: what this measures is the software's cycle, not the wire's (see docs/cellbus.md).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import numpy as np

from drivers.cellbus.config import parse_rack
from drivers.cellbus.rack import CellRack
from gateway.config.issues import IssueSink
from gateway.core.model import Quality

CYCLE = 0.1
SECONDS = 3.0


async def test_full_rack_at_10_hz_over_four_ptys() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.sim.rack_server", "--lines", "4", "--boards", "25"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        paths = json.loads(proc.stdout.readline())["paths"]
        sink = IssueSink("scale.toml")
        lines = [{"name": f"l{i}", "port": x, "boards": 25} for i, x in enumerate(paths)]
        config = parse_rack(sink, {"bus": {"response_timeout": 0.05}, "lines": lines})
        sink.raise_if_any()
        durations: list[float] = []
        late = 0
        async with CellRack(config) as rack:
            cpu0, t0 = time.process_time(), time.monotonic()
            next_tick = t0
            while time.monotonic() - t0 < SECONDS:
                s = await rack.read()
                durations.append(s.duration_s)
                assert s.board_ok.all(), np.flatnonzero(~s.board_ok)
                assert (s.cell_q == Quality.GOOD).all()
                assert s.cell_v.shape == (1400,)
                assert np.nanmin(s.cell_v) > 2.5 and np.nanmax(s.cell_v) < 3.7
                next_tick += CYCLE
                wait = next_tick - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    late += 1
            elapsed = time.monotonic() - t0
            cpu = time.process_time() - cpu0
        rate = len(durations) / elapsed
        d = np.array(durations)
        print(
            f"\nrack 4 x 25 boards x 14 cells: {rate:.2f} cycles/s, cycle read "
            f"median {np.median(d) * 1e3:.1f} ms, max {d.max() * 1e3:.1f} ms, "
            f"late ticks {late}, driver CPU {cpu / elapsed:.0%} of one core"
        )
        assert rate > 9.0
        assert np.median(d) < CYCLE
        assert s.errors.sum() == 0
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=10)
