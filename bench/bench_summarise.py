"""Throughput of the C summariser against its numpy reference, in samples (point values) per second.

Cases: a long window summarised in one call (the kernel's raw speed), one small frame per call
(what a poller feeding WindowStats pays per poll, mostly call overhead), and report-by-exception
per frame. Each figure is the median of repeated runs. Prints a markdown table and writes
bench/out/summarise.json.

    python bench/bench_summarise.py [--repeats N]
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

from gateway.native import stats_ref
from gateway.native.ffi import lib, ptr
from gateway.native.stats import STAT_DTYPE, ReportByException, WindowStats

OUT = Path(__file__).resolve().parent / "out" / "summarise.json"


def _window(n_frames: int, n_points: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    values = rng.normal(230.0, 3.0, (n_frames, n_points))
    values[rng.random(values.shape) < 0.01] = np.nan
    quality = np.where(rng.random(values.shape) < 0.02, 2, 0).astype(np.uint8)
    ts = 1.7e9 + np.arange(n_frames, dtype=np.float64)
    return values, quality, ts


def _median_seconds(run: Callable[[], None], repeats: int) -> float:
    run()  # warm caches and lazy imports outside the timing
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _one_window(n_points: int, n_frames: int) -> dict[str, Callable[[], None]]:
    values, quality, ts = _window(n_frames, n_points)

    def c() -> None:
        w = WindowStats(n_points)
        w.add_frames(values, quality, ts)
        w.snapshot()

    def ref() -> None:
        stats_ref.summarise(values, quality, ts)

    return {"C (WindowStats)": c, "numpy reference": ref}


def _frame_per_call(n_points: int, calls: int) -> dict[str, Callable[[], None]]:
    values, quality, ts = _window(calls, n_points)
    rows = [(values[f], quality[f], float(ts[f])) for f in range(calls)]

    def c() -> None:
        w = WindowStats(n_points)
        for v, q, t in rows:
            w.add(v, q, t)

    # The kernel alone, pointers made once: what the wrapper's checks cost is the difference.
    state = np.empty(n_points, dtype=STAT_DTYPE)
    sp = ptr("gg_stat_t", state, dtype=STAT_DTYPE, writable=True)
    raw_rows = [
        (ptr("double", v), ptr("uint8_t", q), ptr("double", np.array([t]))) for v, q, t in rows
    ]

    def c_raw() -> None:
        lib.gg_stats_reset(sp, n_points)
        for v, q, t in raw_rows:
            lib.gg_stats_add(sp, n_points, 1, v, q, t)

    def ref() -> None:
        for f in range(calls):
            stats_ref.summarise(values[f : f + 1], quality[f : f + 1], ts[f : f + 1])

    return {"C (WindowStats.add)": c, "C kernel, no wrapper": c_raw, "numpy reference": ref}


def _rbe_per_call(n_points: int, calls: int) -> dict[str, Callable[[], None]]:
    values, quality, _ = _window(calls, n_points)
    deadband = np.full(n_points, 1.0)

    def c() -> None:
        rbe = ReportByException(deadband)
        for f in range(calls):
            rbe.changed(values[f], quality[f])

    def ref() -> None:
        last, last_q = stats_ref.never_reported(n_points)
        for f in range(calls):
            _, last, last_q = stats_ref.report_by_exception(
                values[f], quality[f], last, last_q, deadband
            )

    return {"C (ReportByException)": c, "numpy reference": ref}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    cases = [
        ("window 1000 points x 600 frames, one call", 1000 * 600, _one_window(1000, 600)),
        ("100 points x 1 frame per call, 2000 calls", 100 * 2000, _frame_per_call(100, 2000)),
        ("rbe 1000 points x 1 frame per call, 500 calls", 1000 * 500, _rbe_per_call(1000, 500)),
    ]
    results = []
    print("| case | implementation | median s | samples/s | vs numpy |")
    print("|---|---|---:|---:|---:|")
    for case, samples, impls in cases:
        timed = {name: _median_seconds(run, args.repeats) for name, run in impls.items()}
        ref_s = timed["numpy reference"]
        for name, seconds in timed.items():
            rate = samples / seconds
            print(f"| {case} | {name} | {seconds:.4g} | {rate:.3g} | {ref_s / seconds:.1f}x |")
            results.append(
                {
                    "case": case,
                    "implementation": name,
                    "samples": samples,
                    "median_seconds": seconds,
                    "samples_per_second": rate,
                    "speedup_vs_numpy": ref_s / seconds,
                }
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "repeats": args.repeats,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
    }
    OUT.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
