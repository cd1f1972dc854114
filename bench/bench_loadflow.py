"""Load flow speed on the IEEE European LV feeder (906 nodes, 55 loads), one core, side by side:
gridgate (C sweep through the Python API), power-grid-model (Newton-Raphson and iterative
current, asymmetric) and OpenDSS (opendssdirect.py). Single solves cold and warm, and the
1,440-minute day as one batch. Prints markdown and writes bench/out/loadflow.json.

    taskset -c 0 python bench/bench_loadflow.py [--repeats N] [--rounds R] [--compare-root DIR]

A solve keeps only the reduced solution and fills in the full tree on first read, so gridgate is
timed both ways: "solve" (what a caller reading a few summaries pays) and "+ u_pu" (every node's
voltage magnitude read as well). gridgate runs in a fresh subprocess per round; with
``--compare-root`` (another checkout with its extension built in place, e.g. ``git archive REV
gateway native tests | tar -x -C DIR`` then ``python native/build_native.py``-style compile there)
both trees run alternately in the same rounds, so a before/after comparison shares the machine's
state. Medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "loadflow.json"


def _best_per_call(run: Callable[[], object], n: int, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            run()
        times.append((time.perf_counter() - t) / n)
    return statistics.median(times)


def _worker(root: Path, repeats: int) -> dict[str, float]:
    """gridgate's figures with the package found first under ``root`` (public API only, so an
    older tree is timed the same way; kernel-only figures when the tree has gg_lf_expand)."""
    sys.path.insert(0, str(root))
    import numpy as np

    try:
        from gateway.native.ffi import ffi, lib
        from gateway.native.loadflow import Feeder, Loads
    except ModuleNotFoundError:  # a tree from before the layout by domain, for --compare-root
        from gateway.estimate._native import ffi, lib  # type: ignore[no-redef]
        from gateway.estimate.loadflow import Feeder, Loads  # type: ignore[no-redef]
    from tests.test_loadflow_support import IEEE_JSON, ieee_loads

    feeder = Feeder.from_pgm_json(IEEE_JSON)
    day = ieee_loads(feeder, range(1440))
    one = Loads(day.p[565].copy(), day.q[565].copy())
    # Warm start as the daemon sees it: each solve starts from the previous minute's solution.
    minute = [Loads(day.p[m].copy(), day.q[m].copy()) for m in range(1440)]
    it = iter(range(10**9))
    r: dict[str, float] = {}
    r["single_warm_us"] = 1e6 * _best_per_call(
        lambda: feeder.solve(minute[next(it) % 1440]), 1440, repeats
    )
    r["single_warm_u_us"] = 1e6 * _best_per_call(
        lambda: feeder.solve(minute[next(it) % 1440]).u_pu, 1440, repeats
    )
    r["single_cold_us"] = 1e6 * _best_per_call(lambda: feeder.solve(one, warm=False), 1000, repeats)
    r["single_cold_u_us"] = 1e6 * _best_per_call(
        lambda: feeder.solve(one, warm=False).u_pu, 1000, repeats
    )

    def batch_all() -> None:
        res = feeder.solve_batch(day)
        _ = res.v, res.j  # everything the eager version wrote

    for key, run in (
        ("batch_step_us", lambda: feeder.solve_batch(day)),
        ("batch_step_u_us", lambda: feeder.solve_batch(day).u_pu),
        ("batch_step_v_j_us", batch_all),
    ):
        r[key] = 1e6 / 1440 * min(_best_per_call(run, 1, 1) for _ in range(repeats))
    r["iterations_warm"] = float(feeder.solve(one).iterations)
    r["iterations_cold"] = float(feeder.solve(one, warm=False).iterations)
    r["batch_mean_iterations"] = float(feeder.solve_batch(day).iterations.mean())
    r["n_kept"] = float(feeder.n_kept)
    if hasattr(lib, "gg_lf_expand"):
        # Where the time goes: the bare kernel calls with preallocated buffers.
        p, q = ffi.from_buffer("double[]", one.p), ffi.from_buffer("double[]", one.q)
        args = (feeder._c_model, feeder._work, p, q, 0, 1, feeder.tol, feeder.max_iter)
        r["kernel_solve_us"] = 1e6 * _best_per_call(
            lambda: lib.gg_lf_solve(*args, feeder._iters_ptr), 2000, repeats
        )
        res = feeder.solve(one)
        red = res.reduced
        v = np.empty((feeder.model.n_nodes, 3), complex)
        st = ffi.from_buffer("int32_t[]", red.status)
        vh, jk = (ffi.from_buffer("double[]", x) for x in (red.v_head, red.j_kept))
        vp = ffi.cast("double *", ffi.from_buffer(v))
        r["kernel_expand_v_us"] = 1e6 * _best_per_call(
            lambda: lib.gg_lf_expand(feeder._c_model, 1, 0, st, vh, jk, vp, ffi.NULL),
            2000,
            repeats,
        )
        r["u_pu_numpy_us"] = 1e6 * _best_per_call(lambda: np.abs(v), 2000, repeats)
    return r


def _gridgate(root: Path, repeats: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(root), "--repeats", str(repeats)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare-root", type=Path, help="another tree to time alternately")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(args.worker, args.repeats)))
        return 0
    sys.path.insert(0, str(ROOT))
    from power_grid_model import CalculationMethod, PowerGridModel
    from power_grid_model.utils import json_deserialize

    from gateway.native.loadflow import Feeder
    from tests.test_loadflow_support import (
        IEEE_JSON,
        ieee_doc,
        ieee_loads,
        ieee_profiles,
        opendss_circuit,
        pgm_update,
    )

    trees = {"gridgate": ROOT}
    if args.compare_root is not None:
        trees = {"gridgate (compare)": args.compare_root.resolve(), "gridgate": ROOT}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, root in trees.items():
            runs[name].append(_gridgate(root, args.repeats))
    gg: dict[str, dict[str, float]] = {name: _median(r) for name, r in runs.items()}

    feeder = Feeder.from_pgm_json(IEEE_JSON)
    day = ieee_loads(feeder, range(1440))
    rows: dict[str, dict[str, float]] = {}
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

    def line(name: str, warm: float, cold: float, batch: float) -> str:
        ratio = batch / gg["gridgate"]["batch_step_u_us"]
        return (
            f"| {name} | {warm:.1f} | {1e6 / warm:,.0f} | {cold:.1f} | {batch:.2f} |"
            f" {1e6 / batch:,.0f} | {ratio:.1f}x |"
        )

    print(
        "| solver | single warm µs | solves/s | single cold µs | batch µs/step | steps/s |"
        " per step vs gridgate batch + u_pu |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, g in gg.items():
        print(line(f"{name}: solve", g["single_warm_us"], g["single_cold_us"], g["batch_step_us"]))
        print(
            line(
                f"{name}: solve + u_pu of all nodes",
                g["single_warm_u_us"],
                g["single_cold_u_us"],
                g["batch_step_u_us"],
            )
        )
        print(
            f"| {name}: batch + v and j of all nodes | | | | {g['batch_step_v_j_us']:.2f} |"
            f" {1e6 / g['batch_step_v_j_us']:,.0f} | |"
        )
    for name, r in rows.items():
        print(line(name, r["single_warm_us"], r["single_cold_us"], r["batch_step_us"]))
    g = gg["gridgate"]
    if "kernel_solve_us" in g:
        print(
            f"\ngridgate, where the time goes (warm, minute 565): kernel solve"
            f" {g['kernel_solve_us']:.1f} µs, kernel fill-in of 906 node voltages"
            f" {g['kernel_expand_v_us']:.1f} µs, numpy |V| {g['u_pu_numpy_us']:.1f} µs;"
            f" iterations warm {g['iterations_warm']:.0f}, cold {g['iterations_cold']:.0f},"
            f" batch mean {g['batch_mean_iterations']:.2f}; reduced tree {g['n_kept']:.0f} of"
            f" {feeder.model.n_nodes} nodes"
        )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "rounds": args.rounds,
                "gridgate": gg,
                "results": rows,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
