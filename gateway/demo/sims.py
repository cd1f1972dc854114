"""The demo's simulators, each a separate process as a real site's devices would be.

They run with ``python -P``: started from inside a source checkout with gridgate installed (not
editable), ``python -m`` would put the working directory first on the path and import the
uncompiled checkout instead of the installed package. When one fails to start, the error
carries the end of its log: the demo deletes its files when it stops, before anyone reads them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gateway.sim.lv_feeder import HEAD

_START_TIMEOUT = 30.0

# The plant's unit: the seed the shipped anomaly model was trained on, warmed up for ten model
# minutes; 20 s into the demo (at the plant's 10x) a bearing starts to wear, and it grows until
# the early warning fires, about half a minute later.
PLANT_SPEED = 10.0
PLANT_WARM_S = 600
PLANT_FAULT = f"bearing_wear:{PLANT_WARM_S + 200}:8"
RACK_LINES, RACK_BOARDS = 2, 4
# 40 s into the demo the sense wire of one cell (the 6th of the first board) comes loose.
RACK_FAULT_CELL, RACK_FAULT_AFTER_S = 5, 40
RACK_FAULT = f"open_wire:{RACK_FAULT_CELL}:{RACK_FAULT_AFTER_S}"


class SimError(RuntimeError):
    """A simulator did not start; the message says why, with the end of its log."""


@dataclass
class Sim:
    name: str
    proc: subprocess.Popen[str]
    log: Path
    info: dict[str, object] = field(default_factory=dict)

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.proc, timeout)


def stop_process(
    proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None, timeout: float = 15.0
) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def log_tail(log: Path, lines: int = 8) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(f"  | {ln}" for ln in text[-lines:])


def _spawn(name: str, workdir: Path, module: str, *args: str) -> Sim:
    log = workdir / f"{name}-simulator.log"
    err = log.open("w")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", module, *args],
            stdin=subprocess.PIPE,  # the rack simulator stops when its stdin closes
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the demo only, which stops them in order
        )
    finally:
        err.close()
    return Sim(name, proc, log)


def _read_until(sim: Sim, done: Callable[[list[str]], bool]) -> list[str]:
    """Lines from the simulator's stdout until ``done(lines)`` holds."""
    out: IO[str] = sim.proc.stdout  # type: ignore[assignment]
    lines: list[str] = []
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        line = out.readline()
        if not line:
            sim.stop()
            raise SimError(f"the {sim.name} simulator exited at start:\n{log_tail(sim.log)}")
        lines.append(line.strip())
        if done(lines):
            return lines
    sim.stop()
    raise SimError(f"the {sim.name} simulator did not start within {_START_TIMEOUT:g} s")


def start_feeder(workdir: Path, speed: float, start: float, seed: int) -> Sim:
    """The IEEE European LV feeder's head and cabinet meters over Modbus TCP."""
    sim = _spawn(
        "grid", workdir, "gateway.sim.grid_server",
        "--port", "0", "--feeder", "ieee-eu-lv", "--seed", str(seed),
        "--speed", str(speed), "--start", str(start),
    )  # fmt: skip

    def ready(lines: list[str]) -> bool:
        meters = [ln for ln in lines if ln.startswith("meter ")]
        return any(ln.startswith("listening on") for ln in lines) and len(meters) >= 4

    lines = _read_until(sim, ready)
    sim.info["port"] = int(next(ln for ln in lines if ln.startswith("listening")).rsplit(":")[-1])
    sim.info["meters"] = {
        ln.split()[1]: int(ln.split()[3]) for ln in lines if ln.startswith("meter ")
    }
    sim.info["head"] = HEAD
    return sim


def start_rack(workdir: Path) -> Sim:
    """A small NMC rack (2 lines x 4 boards x 14 cells) on pseudo-terminals, in real time, with
    one cell's sense wire coming loose."""
    sim = _spawn(
        "bms", workdir, "gateway.sim.rack_server",
        "--lines", str(RACK_LINES), "--boards", str(RACK_BOARDS), "--chemistry", "nmc",
        "--seed", "5", "--fault", RACK_FAULT,
    )  # fmt: skip
    lines = _read_until(sim, lambda ls: ls[-1].startswith("{"))
    sim.info["paths"] = json.loads(lines[-1])["paths"]
    return sim


def start_plant(workdir: Path) -> Sim:
    """The gas turbine's PLC over OPC UA, running warm, with a bearing that starts to wear."""
    sim = _spawn(
        "plant", workdir, "gateway.sim.plant_server",
        "--port", "0", "--profile", "gas_turbine", "--seed", "11",
        "--speed", str(PLANT_SPEED), "--tick", "0.1", "--running",
        "--warm", str(PLANT_WARM_S), "--fault", PLANT_FAULT,
    )  # fmt: skip
    lines = _read_until(sim, lambda ls: ls[-1].startswith("listening on"))
    sim.info["endpoint"] = lines[-1].removeprefix("listening on ").strip()
    return sim
