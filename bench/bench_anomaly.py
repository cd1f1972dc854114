"""Anomaly model cost per scored window, and the detector's cost per second of plant data.

Cases per profile: the bare interpreter invoke for one window (what TFLite costs), scoring one
window (invoke + error shares + subsystem shares), and ``AnomalyDetector.push`` over one hour of
simulated samples at 1 Hz (feature extraction, normalisation, windowing and a score every 10 s),
reported per sample, i.e. the CPU the model side of the plant daemon needs per second of plant
data. Medians of repeated runs. Prints a markdown table and writes bench/out/anomaly.json.

    python bench/bench_anomaly.py [--repeats N]
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

from gateway.plant.anomaly import MODELS_DIR, AnomalyDetector, AnomalyModel
from gateway.sim.plant import PlantModel

OUT = Path(__file__).resolve().parent / "out" / "anomaly.json"


def _median_us(fn: Callable[[], object], n: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for profile in ("gas_turbine", "biogas_chp"):
        model = AnomalyModel.load(profile)
        x = np.asarray(
            json.loads((MODELS_DIR / f"{profile}.golden.json").read_text())["inputs"][:1],
            dtype=np.float32,
        )
        invoke = _median_us(lambda: model.model.run(x), 2000, args.repeats)  # noqa: B023
        score = _median_us(lambda: model.score(x), 2000, args.repeats)  # noqa: B023
        plant = PlantModel(profile, seed=5, start=1_720_000_000.0, dispatch=False)
        plant.set_load(80.0)
        plant.command_start()
        samples = [(plant.start + plant.t, dict(plant.step(1.0))) for _ in range(6000)]
        per_sample = []
        for _ in range(args.repeats):
            det = AnomalyDetector(profile, model)
            t = time.perf_counter()
            for ts, tags in samples:
                det.push(ts, tags)
            per_sample.append((time.perf_counter() - t) / len(samples) * 1e6)
        rows.append(
            {
                "profile": profile,
                "backend": model.model.backend,
                "model_bytes": (MODELS_DIR / model.card.model_file).stat().st_size,
                "inputs": model.model.input_size,
                "invoke_us": round(invoke, 1),
                "score_window_us": round(score, 1),
                "detector_us_per_sample": round(statistics.median(per_sample), 1),
            }
        )
    print(f"machine: {platform.machine()} {platform.python_version()}, numpy {np.__version__}")
    print(
        "| profile | backend | model bytes | inputs | invoke µs | score one window µs "
        "| detector µs per 1 s sample |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['profile']} | {r['backend']} | {r['model_bytes']} | {r['inputs']} "
            f"| {r['invoke_us']} | {r['score_window_us']} | {r['detector_us_per_sample']} |"
        )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
