"""The gridgate config of the simulated BMS bench: ``gridgate run bms`` against the rack simulator
on ptys, uplink off, rows left in the spool.

One definition for the HIL bench (hil_tests/bms_bench.py) and the cycle benchmark
(bench/bench_bms_cycle.py), so what the benchmark measures is the daemon the bench tests. It lives
beside the simulators because the benchmark scripts import the installed ``gateway`` package, not
``hil_tests``. Write it with :func:`gateway.sim.toml_text.dumps`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["bms_bench_config"]


def bms_bench_config(
    state_dir: Path,
    ports: Sequence[str],
    boards: int,
    *,
    mode: str = "advisory",
    runtime_dir: Path | None = None,
    record_every: int = 0,
    cycle: float | None = None,
) -> dict[str, Any]:
    """The config as a dict: one ``[[bms.lines]]`` per pty in ``ports`` (named ``l0``, ``l1``, ...)
    with ``boards`` boards each, balancing ``mode``; ``record_every`` > 0 adds
    ``[bms.recording]``; ``runtime_dir`` and the bus ``cycle`` (seconds) are left to the daemon's
    defaults when None."""
    gateway: dict[str, Any] = {"site": "bench", "id": "gw-bms", "state_dir": str(state_dir)}
    if runtime_dir is not None:
        gateway["runtime_dir"] = str(runtime_dir)
    gateway["status_interval"] = 0.5
    # A pty on a busy host answers slower than a wire.
    bus: dict[str, Any] = {"response_timeout": 0.05}
    if cycle is not None:
        bus["cycle"] = cycle
    bms: dict[str, Any] = {
        "chemistry": "nmc",
        "window": 1.0,
        "cells": {"capacity_ah": 94.0},
        "balancing": {"mode": mode},
        "bus": bus,
    }
    if record_every > 0:
        bms["recording"] = {"every": record_every}
    bms["lines"] = [
        {"name": f"l{i}", "port": port, "boards": boards} for i, port in enumerate(ports)
    ]
    return {"gateway": gateway, "uplink": {"enabled": False}, "bms": bms}
