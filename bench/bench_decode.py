"""Decode throughput of the C register decoder against the numpy reference, in points per second.

Cases: 100 points of mixed types and orders per call (one meter poll: mostly call overhead),
10,000 points per call (the kernel's raw speed), and a full ReadPlan.decode of 100 points over
several requests (what a poll really pays: block copies, C call, failure marking). Each figure
is the median of repeated runs. Prints a markdown table and writes bench/out/decode.json.

    python bench/bench_decode.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from drivers.modbus.codec import build_specs, encode_point, reference_decode
from drivers.modbus.plan import compile_plan
from drivers.modbus.types import ByteOrder, DataType, RegisterPoint, Table
from gateway.native.decode import decode

OUT = Path(__file__).resolve().parent / "out" / "decode.json"
MIXED = [t for t in DataType if t not in (DataType.STRING, DataType.BOOL)]


def _points(n: int, seed: int = 1) -> tuple[list[RegisterPoint], np.ndarray]:
    """n points of random type and order laid end to end, and registers encoding them."""
    rng = np.random.default_rng(seed)
    points, words = [], []
    for i in range(n):
        dtype = MIXED[rng.integers(len(MIXED))]
        order = ByteOrder(int(rng.integers(4)))
        p = RegisterPoint(f"p{i}", Table.HOLDING, len(words), dtype, order, bit=int(i % 16),
                          scale=0.1, offset=1.0)  # fmt: skip
        points.append(p)
        raw = 1.0 if dtype is DataType.BIT else float(rng.integers(0, 30000))
        words.extend(encode_point(p, raw * p.scale + p.offset))
    return points, np.array(words, dtype=np.uint16)


def _median_seconds(run: Callable[[], object], repeats: int, inner: int) -> float:
    run()  # warm caches and lazy imports outside the timing
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            run()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    rows = []
    for n, inner in ((100, 200), (10_000, 5)):
        points, regs = _points(n)
        specs = build_specs(points, [p.address for p in points])
        c_values, _ = decode(regs, specs)
        ref_values, _ = reference_decode(regs, specs)
        assert np.array_equal(c_values.view(np.uint64), ref_values.view(np.uint64))
        for name, run in (
            ("C gg_decode", lambda r=regs, s=specs: decode(r, s)),
            ("numpy reference", lambda r=regs, s=specs: reference_decode(r, s)),
        ):
            sec = _median_seconds(run, args.repeats, inner)
            rows.append({"case": f"{n} points/call", "impl": name, "points": n,
                         "seconds_per_call": sec, "points_per_s": n / sec})  # fmt: skip

    points, regs = _points(100)
    plan = compile_plan(points, max_registers=40)
    blocks = [regs[r.address : r.end] for r in plan.requests]
    sec = _median_seconds(lambda: plan.decode(blocks), args.repeats, 200)
    rows.append({"case": f"ReadPlan.decode, 100 points, {len(plan.requests)} requests",
                 "impl": "C gg_decode", "points": 100, "seconds_per_call": sec,
                 "points_per_s": 100 / sec})  # fmt: skip

    print("| case | implementation | µs per call | points/s |")
    print("|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['impl']} | {r['seconds_per_call'] * 1e6:,.1f} "
              f"| {r['points_per_s']:,.0f} |")  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "repeats": args.repeats}  # fmt: skip
    OUT.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"\nwritten {OUT}")


if __name__ == "__main__":
    main()
