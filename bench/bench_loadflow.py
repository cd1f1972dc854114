"""Load flow speed on the IEEE European LV feeder (906 nodes, 55 loads), one core, side by side:
gridgate (C sweep through the Python API), power-grid-model (Newton-Raphson and iterative
current, asymmetric) and OpenDSS (opendssdirect.py). Single solves cold and warm, and the
1,440-minute day as one batch. Prints markdown and writes bench/out/loadflow.json.

    taskset -c 0 python bench/bench_loadflow.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.estimate._native import ffi, lib  # noqa: E402
from gateway.estimate.loadflow import Feeder, Loads  # noqa: E402
from tests.test_loadflow_support import (  # noqa: E402
    IEEE_JSON,
    ieee_doc,
    ieee_loads,
    ieee_profiles,
    opendss_circuit,
    pgm_update,
)

OUT = ROOT / "bench" / "out" / "loadflow.json"


def _best_per_call(run: Callable[[], None], n: int, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            run()
        times.append((time.perf_counter() - t) / n)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from power_grid_model import CalculationMethod, PowerGridModel
    from power_grid_model.utils import json_deserialize

    feeder = Feeder.from_pgm_json(IEEE_JSON)
    day = ieee_loads(feeder, range(1440))
    one = Loads(day.p[565], day.q[565])
    rows: dict[str, dict[str, float]] = {}

    # Warm start as the daemon sees it: each solve starts from the previous minute's solution.
    minute_loads = [Loads(day.p[m], day.q[m]) for m in range(1440)]
    counter = iter(range(10**9))
    warm = _best_per_call(
        lambda: feeder.solve(minute_loads[next(counter) % 1440]), 1440, args.repeats
    )
    warm_same = _best_per_call(lambda: feeder.solve(one), 2000, args.repeats)
    cold = _best_per_call(lambda: feeder.solve(one, warm=False), 2000, args.repeats)
    # Where the time goes: the bare kernel call with preallocated buffers, no Python results.
    feeder._fill_s(feeder._s, one, None)
    v = np.empty((feeder.model.n_nodes, 3), complex)
    j = np.empty_like(v)
    vp, jp = (ffi.cast("double *", ffi.from_buffer(x)) for x in (v, j))

    def kernel() -> None:
        lib.gg_lf_solve(
            feeder._c_model,
            feeder._work,
            feeder._s_ptr,
            0,
            1,
            feeder.tol,
            feeder.max_iter,
            vp,
            jp,
            feeder._iters_ptr,
        )

    k_warm = _best_per_call(kernel, 2000, args.repeats)
    iters_warm = int(feeder.solve(one).iterations)
    iters_cold = int(feeder.solve(one, warm=False).iterations)
    t = time.perf_counter()
    res = feeder.solve_batch(day)
    batch = min(
        [time.perf_counter() - t]
        + [_best_per_call(lambda: feeder.solve_batch(day), 1, 1) for _ in range(args.repeats - 1)]
    )
    batch_v = min(
        _best_per_call(lambda: feeder.solve_batch(day, line_currents=False), 1, 1)
        for _ in range(args.repeats)
    )
    rows["gridgate"] = {
        "single_warm_us": warm * 1e6,
        "single_warm_same_loads_us": warm_same * 1e6,
        "batch_step_voltages_only_us": batch_v / 1440 * 1e6,
        "single_cold_us": cold * 1e6,
        "kernel_only_warm_us": k_warm * 1e6,
        "batch_step_us": batch / 1440 * 1e6,
        "iterations_warm": iters_warm,
        "iterations_cold": iters_cold,
        "batch_mean_iterations": float(res.iterations.mean()),
    }

    input_data = json_deserialize(json.dumps(ieee_doc()))
    model = PowerGridModel(input_data)
    upd = pgm_update(feeder, day)
    one_upd = {"asym_load": upd["asym_load"][565:566]}
    for name, method in (
        ("pgm_newton_raphson", CalculationMethod.newton_raphson),
        ("pgm_iterative_current", CalculationMethod.iterative_current),
    ):

        def single(m: CalculationMethod = method) -> None:
            model.calculate_power_flow(
                symmetric=False,
                error_tolerance=1e-10,
                calculation_method=m,
                update_data=one_upd,
                threading=-1,
            )

        def bat(m: CalculationMethod = method) -> None:
            model.calculate_power_flow(
                symmetric=False,
                error_tolerance=1e-10,
                calculation_method=m,
                update_data=upd,
                threading=-1,
            )

        s = _best_per_call(single, 50, args.repeats)
        b = _best_per_call(bat, 1, max(1, args.repeats // 2))
        rows[name] = {
            "single_warm_us": s * 1e6,
            "single_cold_us": s * 1e6,
            "batch_step_us": b / 1440 * 1e6,
        }

    dss = opendss_circuit()
    ids, kw = ieee_profiles()
    order = {lid: i for i, lid in enumerate(ids)}
    names = dss.Loads.AllNames()
    cols = [order[int("".join(c for c in n if c.isdigit())) + 20000] for n in names]

    def dss_step(minute: int) -> None:
        for name, value in zip(names, kw[minute, cols], strict=True):
            dss.Loads.Name(name)
            dss.Loads.kW(float(value))
        dss.Solution.Solve()

    s = _best_per_call(dss.Solution.Solve, 200, args.repeats)
    b = _best_per_call(lambda: [dss_step(m) for m in range(1440)], 1, max(1, args.repeats // 2))
    rows["opendss"] = {
        "single_warm_us": s * 1e6,
        "single_cold_us": float("nan"),
        "batch_step_us": b / 1440 * 1e6,
    }

    g = rows["gridgate"]
    print(
        "| solver | single warm µs | solves/s | single cold µs | batch µs/step | steps/s |"
        " batch speed-up of gridgate |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['single_warm_us']:.1f} | {1e6 / r['single_warm_us']:,.0f} | "
            f"{r['single_cold_us']:.1f} | {r['batch_step_us']:.2f} | "
            f"{1e6 / r['batch_step_us']:,.0f} | {r['batch_step_us'] / g['batch_step_us']:.1f}x |"
        )
    print(
        f"\ngridgate batch without line currents: {g['batch_step_voltages_only_us']:.2f} µs/step;"
        f" warm solve with unchanged loads: {g['single_warm_same_loads_us']:.1f} µs"
    )
    print(
        f"gridgate kernel only (warm, no Python result objects): {g['kernel_only_warm_us']:.1f} µs;"
        f" iterations warm {iters_warm}, cold {iters_cold}, batch mean"
        f" {g['batch_mean_iterations']:.2f}; reduced tree {feeder.n_kept} of"
        f" {feeder.model.n_nodes} nodes"
    )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "results": rows,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
