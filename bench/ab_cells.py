"""Two builds of the cells kernel timed in one run, alternated (before/after a kernel change).

Each tree (a checkout with its own compiled gateway/_native*.so) runs in its own worker process
on the settled 1,400-cell strings of bench_cells.py (its code, this checkout's); the parent asks
them in turn for blocks of calls, swapping the order every round, so that a busy neighbour on a
shared machine slows both alike. Prints medians and minima per build: the update through
CellEstimator on the same readings and on 16 sets in turn, the kernel called directly, and the
numpy reference (the same code in both trees unless it changed).

    python bench/ab_cells.py OLD_TREE NEW_TREE [--rounds N]

OLD_TREE can be made with ``git archive <commit> gateway drivers native | tar -x -C DIR`` and a
build of DIR/native (see native/build_native.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

_WORKER = r"""
import json, sys, time
sys.path.insert(1, sys.argv[1])  # bench/ of this checkout, after the tree (the working dir)
from bench_cells import (
    Chemistry, kernel_only, reference, settled_string, through_api, two_lane,
)

fixed = settled_string(1400, Chemistry.NMC, moving=False)
moving = settled_string(1400, Chemistry.NMC, moving=True)
runs = {
    "api": through_api(fixed),
    "api_moving": through_api(moving),
    "api_two_lanes": through_api(two_lane(1400)),
    "kernel": kernel_only(fixed),
    "numpy": reference(fixed),
}
for line in sys.stdin:
    name, count = line.split()
    run = runs[name]
    out = []
    for _ in range(int(count)):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    print(json.dumps(out), flush=True)
"""

# (what, calls per block): the reference is 15 times slower, so fewer calls keep blocks similar.
_BLOCKS = (
    ("api", 200),
    ("api_moving", 200),
    ("api_two_lanes", 200),
    ("kernel", 200),
    ("numpy", 20),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_tree")
    parser.add_argument("new_tree")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    trees = {"before": args.old_tree, "after": args.new_tree}
    workers = {
        name: subprocess.Popen(
            [sys.executable, "-c", _WORKER, os.path.dirname(os.path.abspath(__file__))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": tree},
            # python -c puts the working directory first on sys.path, ahead of PYTHONPATH: run
            # in the tree, or a worker started from a checkout imports that checkout's build.
            cwd=tree,
        )
        for name, tree in trees.items()
    }
    times: dict[tuple[str, str], list[float]] = {(b, w): [] for b in trees for w, _ in _BLOCKS}
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(reversed(trees))
        for what, count in _BLOCKS:
            for name in order:
                proc = workers[name]
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(f"{what} {count}\n")
                proc.stdin.flush()
                block = json.loads(proc.stdout.readline())
                if r > 0:  # the first round warms caches and branch predictors
                    times[(name, what)] += block
    load_after = os.getloadavg()[0]
    for proc in workers.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    print("| 1,400 cells, one update | before median µs | min | after median µs | min |")
    print("|---|---:|---:|---:|---:|")
    for what, _ in _BLOCKS:
        b, a = times[("before", what)], times[("after", what)]
        print(
            f"| {what} | {statistics.median(b) * 1e6:.1f} | {min(b) * 1e6:.1f} "
            f"| {statistics.median(a) * 1e6:.1f} | {min(a) * 1e6:.1f} |"
        )
    for name in trees:
        ref = statistics.median(times[(name, "numpy")])
        api = statistics.median(times[(name, "api")])
        print(f"{name}: numpy reference / update through the API = {ref / api:.1f}x")
    print(f"load average {load_before:.2f} -> {load_after:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
