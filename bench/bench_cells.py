"""One full cells update (EKF, faults, statistics, balancing plan) for a 1,400-cell string.

Side by side: the C kernel through the Python API (CellEstimator.update) on the same readings
every call and on 16 sets of readings in turn (noise redrawn and the current moving, as a real
string changes: the same readings let the branch predictor learn the data), the kernel called
directly, an LFP string with hysteresis, the vectorised numpy reference of the whole update and
its EKF part alone. Each figure is the median of many runs; the machine is shared, so the CPU
load at the time is printed with them. The target is judged on the changing readings. Prints
markdown and writes bench/out/cells.json.

    python bench/bench_cells.py [--repeats N] [--cells N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    from gateway.native import cells_ref
    from gateway.native.cells import CellEstimator, CellsConfig, cell_params
    from gateway.native.ffi import lib, ptr
    from gateway.native.ocv import Chemistry, hysteresis_table, lookup, ocv_table
except ModuleNotFoundError:  # a tree from before the layout by domain, timed by ab_cells.py
    from gateway.estimate import cells_ref  # type: ignore[no-redef]
    from gateway.estimate._native import lib, ptr  # type: ignore[no-redef]
    from gateway.estimate.cells import (  # type: ignore[no-redef]
        CellEstimator,
        CellsConfig,
        cell_params,
    )
    from gateway.estimate.ocv import (  # type: ignore[no-redef]
        Chemistry,
        hysteresis_table,
        lookup,
        ocv_table,
    )

OUT = Path(__file__).resolve().parent / "out" / "cells.json"
TARGET_US = 25.0
TARGET_RATIO = 5.0
SETS = 16
DT = 0.1


@dataclass(frozen=True)
class Readings:
    current: float
    v: np.ndarray
    vq: np.ndarray
    t: np.ndarray
    tq: np.ndarray


@dataclass(frozen=True)
class String:
    """A settled string (flags and plan as in steady operation) and its readings."""

    est: CellEstimator
    params: np.ndarray
    ocv: np.ndarray
    hyst: np.ndarray | None
    cfg: CellsConfig
    readings: list[Readings]


def settled_string(n: int, chem: Chemistry, moving: bool) -> String:
    """The bench string: 1.5 % capacity spread, SOC 45-55 %, 40 A; with moving readings the
    current swings +-30 A over the sets and every set has its own noise."""
    rng = np.random.default_rng(1)
    params = cell_params(
        n, 94.0 * (1 + 0.015 * rng.standard_normal(n)), 0.8e-3, 0.9e-3, 100.0 * (1 + rng.random(n))
    )
    ocv = ocv_table(chem)
    hyst = hysteresis_table(chem) if chem is Chemistry.LFP else None
    cfg = CellsConfig.for_chemistry(chem)
    soc0 = rng.uniform(0.45, 0.55, n)
    est = CellEstimator(params, ocv, cfg, soc0, hyst=hyst)
    readings = []
    for k in range(SETS if moving else 1):
        current = 40.0 + (30.0 * np.sin(k) if moving else 0.0)
        v = lookup(ocv, soc0)[0] - 0.8e-3 * current + 3e-4 * rng.standard_normal(n)
        vq = np.zeros(n, np.uint8)
        vq[rng.random(n) < 0.002] = 2
        t = 25.0 + 3.0 * rng.random(n)
        readings.append(Readings(current, v, vq, t, np.zeros(n, np.uint8)))
    for r in itertools.islice(itertools.cycle(readings), 50):
        est.update(DT, r.current, r.v, r.vq, r.t, r.tq)
    return String(est, params, ocv, hyst, cfg, readings)


def through_api(s: String) -> Callable[[], object]:
    turn = itertools.cycle(s.readings)

    def run() -> object:
        r = next(turn)
        return s.est.update(DT, r.current, r.v, r.vq, r.t, r.tq)

    return run


def two_lane(n: int) -> String:
    """The moving string with the EKF held to two lanes: the code aarch64 (NEON) and x86-64
    CPUs without AVX2 run, the rest still in this CPU's encoding."""
    s = settled_string(n, Chemistry.NMC, moving=True)
    s.est._ctx.lanes = 2
    return s


def kernel_only(s: String) -> Callable[[], object]:
    r = s.readings[0]
    args = (ptr("double", r.v), ptr("uint8_t", r.vq), ptr("double", r.t), ptr("uint8_t", r.tq))
    ctx = s.est._ctx
    return lambda: lib.gg_cells_step(ctx, DT, r.current, *args)


def reference(s: String) -> Callable[[], object]:
    state = s.est.state.copy()
    r = s.readings[0]
    return lambda: cells_ref.step(
        state, s.params, s.ocv, s.cfg, DT, r.current, r.v, r.vq, r.t, r.tq, s.hyst
    )


def ekf_only_numpy(s: String) -> Callable[[], object]:
    """The EKF part of the reference alone (predict, lookup, gated update), for scale: the
    issue's reference machine took about 32 µs for it."""
    state, params, cfg = s.est.state.copy(), s.params, s.cfg
    r = s.readings[0]

    def run() -> object:
        a = np.exp(-DT / params["tau_s"])
        soc = np.clip(state["soc"] - r.current * DT / (3600.0 * params["capacity_ah"]), 0.0, 1.0)
        v1 = a * state["v1"] + params["r1"] * (1.0 - a) * r.current
        p00 = state["p00"] + cfg.q_soc * DT
        p01 = a * state["p01"]
        p11 = a * a * state["p11"] + cfg.q_v1 * DT
        ocv_now, h = lookup(s.ocv, soc)
        innov = r.v - (ocv_now - v1 - params["r0"] * r.current)
        ph0 = p00 * h - p01
        ph1 = p01 * h - p11
        inv_s = 1.0 / (h * ph0 - ph1 + cfg.r_v)
        k0, k1 = ph0 * inv_s, ph1 * inv_s
        return soc + k0 * innov, v1 + k1 * innov, p00 - k0 * ph0, p01 - k0 * ph1, p11 - k1 * ph1

    return run


def median_us(run: Callable[[], object], repeats: int) -> float:
    for _ in range(20):
        run()  # warm caches, the coefficient cache and lazy imports outside the timing
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2001)
    parser.add_argument("--cells", type=int, default=1400)
    args = parser.parse_args()
    n = args.cells
    fixed = settled_string(n, Chemistry.NMC, moving=False)
    moving = settled_string(n, Chemistry.NMC, moving=True)
    lfp = settled_string(n, Chemistry.LFP, moving=True)
    api_moving = "C via CellEstimator.update, 16 sets of readings in turn"
    ref_name = "numpy reference, full update"
    impls: dict[str, Callable[[], object]] = {
        api_moving: through_api(moving),
        "C via CellEstimator.update, same readings every call": through_api(fixed),
        "C kernel, no wrapper, same readings": kernel_only(fixed),
        "... EKF on two lanes (NEON, pre-AVX2 x86), 16 sets": through_api(two_lane(n)),
        "LFP with hysteresis, C via CellEstimator.update, 16 sets": through_api(lfp),
        ref_name: reference(fixed),
        "numpy EKF alone (for scale)": ekf_only_numpy(fixed),
    }
    load_before = os.getloadavg()[0]
    timed = {name: median_us(run, args.repeats) for name, run in impls.items()}
    load_after = os.getloadavg()[0]
    ref_us = timed[ref_name]
    lanes = int(lib.gg_cells_lanes())
    print(f"| {n} cells, one update (EKF on {lanes} lanes) | median µs | vs numpy full update |")
    print("|---|---:|---:|")
    for name, us in timed.items():
        print(f"| {name} | {us:.1f} | {ref_us / us:.1f}x |")
    api_us = timed[api_moving]
    verdict = {
        "update_us": api_us,
        "target_us": TARGET_US,
        "under_target": api_us < TARGET_US,
        "speedup_vs_numpy": ref_us / api_us,
        "target_speedup": TARGET_RATIO,
        "speedup_met": ref_us / api_us >= TARGET_RATIO,
    }
    print(
        f"\nupdate on changing readings {api_us:.1f} µs (target < {TARGET_US}), "
        f"{ref_us / api_us:.1f}x numpy (target >= {TARGET_RATIO}x); EKF lanes {lanes}; "
        f"load average {load_before:.2f} -> {load_after:.2f} on {os.cpu_count()} CPUs"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "cells": n,
        "repeats": args.repeats,
        "ekf_lanes": lanes,
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
