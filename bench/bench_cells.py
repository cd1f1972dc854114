"""One full cells update (EKF, faults, statistics, balancing plan) for a 1,400-cell string.

Side by side: the C kernel through the Python API (CellEstimator.update), the C kernel called
directly with pointers made once, the vectorised numpy reference of the whole update, and the
numpy reference's EKF part alone. Each figure is the median of many runs; the machine is shared,
so the CPU load at the time is printed with them. Prints markdown and writes bench/out/cells.json.

    python bench/bench_cells.py [--repeats N] [--cells N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gateway.estimate import cells_ref
from gateway.estimate._native import lib, ptr
from gateway.estimate.cells import CellEstimator, CellsConfig, cell_params
from gateway.estimate.ocv import Chemistry, lookup, ocv_table

OUT = Path(__file__).resolve().parent / "out" / "cells.json"
TARGET_US = 25.0
TARGET_RATIO = 5.0


def _median_us(run: Callable[[], object], repeats: int) -> float:
    for _ in range(20):
        run()  # warm caches, the coefficient cache and lazy imports outside the timing
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _ekf_only_numpy(state, params, ocv, cfg: CellsConfig, dt: float, current: float, v):
    """The EKF part of the reference alone (predict, lookup, gated update), for scale."""
    a = np.exp(-dt / params["tau_s"])
    soc = np.clip(state["soc"] - current * dt / (3600.0 * params["capacity_ah"]), 0.0, 1.0)
    v1 = a * state["v1"] + params["r1"] * (1.0 - a) * current
    p00 = state["p00"] + cfg.q_soc * dt
    p01 = a * state["p01"]
    p11 = a * a * state["p11"] + cfg.q_v1 * dt
    ocv_now, h = lookup(ocv, soc)
    innov = v - (ocv_now - v1 - params["r0"] * current)
    ph0 = p00 * h - p01
    ph1 = p01 * h - p11
    inv_s = 1.0 / (h * ph0 - ph1 + cfg.r_v)
    k0, k1 = ph0 * inv_s, ph1 * inv_s
    return soc + k0 * innov, v1 + k1 * innov, p00 - k0 * ph0, p01 - k0 * ph1, p11 - k1 * ph1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2001)
    parser.add_argument("--cells", type=int, default=1400)
    args = parser.parse_args()
    n = args.cells
    rng = np.random.default_rng(1)
    params = cell_params(
        n, 94.0 * (1 + 0.015 * rng.standard_normal(n)), 0.8e-3, 0.9e-3, 100.0 * (1 + rng.random(n))
    )
    ocv = ocv_table(Chemistry.NMC)
    cfg = CellsConfig()
    soc0 = rng.uniform(0.45, 0.55, n)
    est = CellEstimator(params, ocv, cfg, soc0)
    v = lookup(ocv, soc0)[0] - 0.8e-3 * 40.0 + 3e-4 * rng.standard_normal(n)
    vq = np.zeros(n, np.uint8)
    vq[rng.random(n) < 0.002] = 2
    t = 25.0 + 3.0 * rng.random(n)
    tq = np.zeros(n, np.uint8)
    for _ in range(50):  # a settled string: flags and plan as in steady operation
        est.update(0.1, 40.0, v, vq, t, tq)
    state = est.state.copy()
    ctx = est._ctx
    pv, pvq, pt, ptq = ptr("double", v), ptr("uint8_t", vq), ptr("double", t), ptr("uint8_t", tq)

    impls: dict[str, Callable[[], object]] = {
        "C via CellEstimator.update": lambda: est.update(0.1, 40.0, v, vq, t, tq),
        "C kernel, no wrapper": lambda: lib.gg_cells_step(ctx, 0.1, 40.0, pv, pvq, pt, ptq),
        "numpy reference, full update": lambda: cells_ref.step(
            state, params, ocv, cfg, 0.1, 40.0, v, vq, t, tq
        ),
        "numpy EKF alone (for scale)": lambda: _ekf_only_numpy(
            state, params, ocv, cfg, 0.1, 40.0, v
        ),
    }
    load_before = os.getloadavg()[0]
    timed = {name: _median_us(run, args.repeats) for name, run in impls.items()}
    load_after = os.getloadavg()[0]
    ref_us = timed["numpy reference, full update"]
    print(f"| {n} cells, one update | median µs | vs numpy full update |")
    print("|---|---:|---:|")
    for name, us in timed.items():
        print(f"| {name} | {us:.1f} | {ref_us / us:.1f}x |")
    api_us = timed["C via CellEstimator.update"]
    verdict = {
        "update_us": api_us,
        "target_us": TARGET_US,
        "under_target": api_us < TARGET_US,
        "speedup_vs_numpy": ref_us / api_us,
        "target_speedup": TARGET_RATIO,
        "speedup_met": ref_us / api_us >= TARGET_RATIO,
    }
    print(
        f"\nupdate {api_us:.1f} µs (target < {TARGET_US}), {ref_us / api_us:.1f}x numpy "
        f"(target >= {TARGET_RATIO}x); load average {load_before:.2f} -> {load_after:.2f} "
        f"on {os.cpu_count()} CPUs"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "cells": n,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": [load_before, load_after],
    }
    results = [
        {"implementation": k, "median_us": us, "speedup_vs_numpy": ref_us / us}
        for k, us in timed.items()
    ]
    OUT.write_text(
        json.dumps({"meta": meta, "results": results, "verdict": verdict}, indent=2) + "\n"
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
