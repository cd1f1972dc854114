"""The clock-step shim itself: a child's wall clock jumps, its monotonic clock and its sleeps do
not notice (what an NTP step does), so the HIL clock-step test can trust it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.clockstep.shim import ClockStep

_CHILD = """
import asyncio, ctypes, json, sys, time, datetime
libc = ctypes.CDLL(None)
libc.time.restype = ctypes.c_long
class Timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]
def gettimeofday():
    tv = Timeval()
    libc.gettimeofday(ctypes.byref(tv), None)
    return tv.sec + tv.usec / 1e6
async def main():
    for line in sys.stdin:
        t0, m0 = time.time(), time.monotonic()
        await asyncio.sleep(0.2)
        time.sleep(0.05)
        print(json.dumps({
            "wall": time.time(), "wall0": t0, "mono": time.monotonic(), "mono0": m0,
            "dt": datetime.datetime.now().timestamp(), "ns": time.time_ns() / 1e9,
            "c_time": libc.time(None), "c_gettimeofday": gettimeofday(),
        }), flush=True)
asyncio.run(main())
"""


def _ask(proc: subprocess.Popen[str]) -> dict[str, float]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    answer: dict[str, float] = json.loads(proc.stdout.readline())
    return answer


def test_wall_clock_steps_and_monotonic_does_not(tmp_path: Path) -> None:
    step = ClockStep.build(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **step.env()},
    )
    try:
        before = _ask(proc)
        assert abs(before["wall"] - time.time()) < 2.0, "no offset yet"
        for offset in (3600.0, -3600.0, 0.0):
            step.set(offset)
            got = _ask(proc)
            now = time.time()
            # The child's wall clock is ours plus the offset, by every route Python has.
            for key in ("wall", "dt", "ns", "c_time", "c_gettimeofday"):
                assert abs(got[key] - (now + offset)) < 2.0, (offset, key, got)
            # Sleeps (asyncio's on the monotonic clock, time.sleep) last what they should.
            assert 0.24 <= got["mono"] - got["mono0"] < 2.0, got
            # CLOCK_MONOTONIC is one clock for the whole machine: the child's is still ours.
            assert abs(got["mono"] - time.monotonic()) < 2.0, (offset, got)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    assert proc.returncode == 0
