"""The BMS daemon's full cycle (read, decode, estimate, summarise) in CPU per cycle, full rack.

Issue 4: "the rack's full cycle (read, decode, estimate, summarise) per second of CPU", for
4 lines x 25 boards x 14 cells = 1,400 cells. The rack simulator (gateway.sim.rack_server) runs in
its own process on pseudo-terminals, so its CPU is not counted. Two measurements:

1. In process, free running: a :class:`~gateway.bms.daemon.BmsDaemon` built by the runtime's own
   ``build_daemon`` from the same TOML config as part 2, its ``_cycle()`` called back to back (no
   ticker). The daemon's parts are wrapped on the instance with timers, so the code path is the
   daemon's, unchanged: read (``CellRack.read``: bus I/O, frame parsing and payload decoding are
   one step in the driver), estimate (``CellEstimator.update``), alarms (the rest of
   ``StringMonitor.step`` and ``BoardAlarms.check``), summarise (``StringMonitor.summary`` and
   ``RackWindow.add``). The window close (``BmsDaemon._flush``: ``RackWindow.close`` and the spool
   insert) runs once per window of cycles in the daemon, so it is timed per window, apart.
   CPU is ``time.process_time()`` (this process only), wall is ``time.perf_counter()``.
2. ``gridgate run bms`` as a process at its configured 10 Hz: ``utime + stime`` of
   ``/proc/PID/stat`` over a steady window after start-up, cycles counted by the daemon's own
   status file (``cycles``), read right after the daemon rewrote it.

A pty moves bytes at memory speed, so the wire time of the real bus is not in the wall figures
(docs/cellbus.md); the CPU figures are the software's, which is what the issue asks.

    python bench/bench_bms_cycle.py [--seconds 5] [--daemon-seconds 30] [--cpu 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "bms_cycle.json"
CELLS_PER_BOARD = 14
RATE_HZ = 10.0
PARTS = ("read", "estimate", "alarms", "summarise", "record")
DECODE = "decode"  # inside "read": not added again to the cycle's parts


# ----- machine -------------------------------------------------------------------------------
def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def pin(pid: int, cpu: int | None) -> None:
    """Keep off the other core: it runs someone else's benchmarks at the same time."""
    if cpu is not None:
        os.sched_setaffinity(pid, {cpu})


# ----- the simulator and the config ----------------------------------------------------------
@contextlib.contextmanager
def simulator(lines: int, boards: int, cpu: int | None) -> Iterator[list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.sim.rack_server", "--lines", str(lines),
         "--boards", str(boards), "--cells", str(CELLS_PER_BOARD), "--chemistry", "nmc"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        pin(proc.pid, cpu)
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["paths"]
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the server stops when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_config(workdir: Path, paths: list[str], boards: int, record_every: int) -> Path:
    """The hil_tests/bms_bench.py config, with the full rack and the daemon's default 10 Hz."""
    from gateway.sim.bms_bench_config import bms_bench_config
    from gateway.sim.toml_text import dumps

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "gridgate.toml"
    config = bms_bench_config(
        workdir / "state",
        paths,
        boards,
        runtime_dir=workdir / "run",
        record_every=record_every,
        cycle=1.0 / RATE_HZ,
    )
    path.write_text(dumps(config))
    return path


# ----- part 1: in process --------------------------------------------------------------------
class Meter:
    """CPU seconds per named part within the current cycle."""

    def __init__(self) -> None:
        self.now: dict[str, float] = dict.fromkeys((*PARTS, DECODE), 0.0)
        self.calls = 0  # timed calls: each costs two process_time() calls of overhead

    def reset(self) -> None:
        for k in self.now:
            self.now[k] = 0.0

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kw: Any) -> Any:
            self.calls += 1
            c = time.process_time()
            try:
                return fn(*args, **kw)
            finally:
                self.now[part] += time.process_time() - c

        return timed

    def wrap_async(self, part: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        # Nothing else runs on this loop (no supervisor, no status loop), so the CPU spent
        # while the read awaits the ptys is the driver's own.
        async def timed(*args: Any, **kw: Any) -> Any:
            self.calls += 1
            c = time.process_time()
            try:
                return await fn(*args, **kw)
            finally:
                self.now[part] += time.process_time() - c

        return timed


@contextlib.contextmanager
def decode_timer(meter: Meter) -> Iterator[None]:
    """The driver's decode step (payload to arrays) inside its read, timed where it is looked up:
    ``protocol.decode_sample`` and ``_Buffers.store`` of drivers/cellbus/rack.py."""
    from drivers.cellbus import protocol, rack

    decode, store = protocol.decode_sample, rack._Buffers.store
    protocol.decode_sample = meter.wrap(DECODE, decode)  # type: ignore[assignment]
    rack._Buffers.store = meter.wrap(DECODE, store)  # type: ignore[method-assign]
    try:
        yield
    finally:
        protocol.decode_sample = decode  # type: ignore[assignment]
        rack._Buffers.store = store  # type: ignore[method-assign]


def instrument(daemon: Any, meter: Meter) -> None:
    """Timers on the daemon's own objects (instance attributes shadow the methods)."""
    mon = daemon._monitor
    rack = daemon._rack
    rack.read = meter.wrap_async("read", rack.read)
    mon.estimator.update = meter.wrap("estimate", mon.estimator.update)
    step = meter.wrap("alarms", mon.step)  # includes update: subtracted below

    def step_minus_update(*args: Any, **kw: Any) -> Any:
        before = meter.now["estimate"]
        out = step(*args, **kw)
        meter.now["alarms"] -= meter.now["estimate"] - before
        return out

    mon.step = step_minus_update
    daemon._boards.check = meter.wrap("alarms", daemon._boards.check)
    mon.summary = meter.wrap("summarise", mon.summary)
    daemon._window.add = meter.wrap("summarise", daemon._window.add)
    if daemon._recorder is not None:
        daemon._recorder.write = meter.wrap("record", daemon._recorder.write)


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {
        "median_ms": float(np.median(a) * 1e3),
        "mean_ms": float(a.mean() * 1e3),
        "p90_ms": float(np.percentile(a, 90) * 1e3),
        "p99_ms": float(np.percentile(a, 99) * 1e3),
        "n": len(a),
    }


async def in_process(config_path: Path, seconds: float, warmup: int) -> dict[str, Any]:
    from gateway.config import load_config
    from gateway.core.notify import Heartbeats
    from gateway.core.runtime import DaemonContext, build_daemon, open_spool
    from gateway.spool.store import AsyncSpool

    config = load_config(config_path)
    spool = open_spool(config)
    daemon: Any = build_daemon("bms", DaemonContext(config, AsyncSpool(spool), Heartbeats()))
    assert config.sections["bms"] is not None
    per_window = max(1, round(config.sections["bms"].window / config.sections["bms"].cycle))
    meter = Meter()
    instrument(daemon, meter)
    cpu: list[float] = []
    wall: list[float] = []
    parts: dict[str, list[float]] = {k: [] for k in (*PARTS, DECODE)}
    flush_cpu: list[float] = []
    ok: list[int] = []
    try:
        with decode_timer(meter):
            for _ in range(warmup):  # the first cycle starts the estimator off the OCV table
                await daemon._cycle()
            calls0 = meter.calls
            t_end = time.perf_counter() + seconds
            n = 0
            while time.perf_counter() < t_end:
                meter.reset()
                c0, w0 = time.process_time(), time.perf_counter()
                await daemon._cycle()
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
                for k, values in parts.items():
                    values.append(meter.now[k])
                ok.append(int(np.count_nonzero(daemon._last.board_ok)))
                n += 1
                if n % per_window == 0:
                    c = time.process_time()
                    await daemon._flush(time.time())
                    flush_cpu.append(time.process_time() - c)
            timed_calls = (meter.calls - calls0) / len(cpu)
            steady = steady_dt_cost(daemon)
    finally:
        await daemon.close()
        spool.close()
    rest = [c - sum(parts[k][i] for k in PARTS) for i, c in enumerate(cpu)]
    out: dict[str, Any] = {
        "cycles": len(cpu),
        "wall_s": float(sum(wall)),
        "cycles_per_wall_s": len(cpu) / float(sum(wall)),
        "boards_answering_min": min(ok),
        "cycle_cpu": stats(cpu),
        "cycle_wall": stats(wall),
        "parts_cpu": {k: stats(v) for k, v in parts.items() if any(v)},
        "rest_cpu": stats(rest),
        "window_close_cpu": stats(flush_cpu) if flush_cpu else None,
        "cycles_per_window": per_window,
        "estimate_dt": steady,
        "timer_overhead_ms": timed_calls * 2 * timer_cost() * 1e3,
    }
    return out


def timer_cost(n: int = 100_000) -> float:
    c = time.perf_counter()
    for _ in range(n):
        time.process_time()
    return (time.perf_counter() - c) / n


def steady_dt_cost(daemon: Any, n: int = 200) -> dict[str, float]:
    """``CellEstimator.update`` on the last reading with a steady dt vs a measured one.

    The kernel recomputes its per-cell exp() only when dt changes (native/cells.c,
    ``dt == ctx->coef_dt``). The daemon on its ticker integrates over whole tick periods
    (gateway/bms/sample_grid.py), the same float every cycle; the in-process loop of part 1 calls
    ``_cycle`` back to back without a ticker, so there dt is the measured interval, which differs
    in its last bits every cycle.
    """
    s = daemon._last
    mon = daemon._monitor
    t, tq = mon.layout.cell_temperatures(s.temp_c, s.temp_q)
    est = mon.estimator
    update = type(est).update  # the class's, not the timer wrapped on the instance

    def run(jitter: bool) -> float:
        c = time.process_time()
        for i in range(n):
            dt_s = 0.1 + (i % 7) * 1e-6 if jitter else 0.1
            update(est, dt_s, s.current_a, s.cell_v, s.cell_q, t, tq)
        return (time.process_time() - c) / n

    run(False)
    steady, measured = run(False), run(True)
    return {"steady_dt_ms": steady * 1e3, "changing_dt_ms": measured * 1e3}


# ----- part 2: the daemon process ------------------------------------------------------------
def proc_cpu_s(pid: int) -> float:
    # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc


def fresh_status(path: Path, proc: subprocess.Popen[bytes], after: float) -> dict[str, Any]:
    """The next status the daemon writes after ``after``: its cycle count is then ~ms old."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gridgate run bms exited with {proc.returncode}")
        doc = read_status(path)
        if doc is not None and doc.get("updated", 0.0) > after and "cycles" in doc:
            return doc
        time.sleep(0.005)
    raise RuntimeError(f"no status update in {path} within 30 s")


def daemon_process(
    config_path: Path, workdir: Path, seconds: float, warmup: float, cpu: int | None
) -> dict[str, Any]:
    log_path = workdir / "bms.log"
    status_path = workdir / "run" / "status" / "bms.json"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "-c", str(config_path), "run", "bms"],
            stdout=log,
            stderr=log,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    try:
        pin(proc.pid, cpu)
        fresh_status(status_path, proc, 0.0)  # running: the first cycle is done
        time.sleep(warmup)
        a = fresh_status(status_path, proc, time.time())
        cpu0, w0 = proc_cpu_s(proc.pid), time.perf_counter()
        time.sleep(seconds)
        b = fresh_status(status_path, proc, time.time())
        cpu1, w1 = proc_cpu_s(proc.pid), time.perf_counter()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    if rc != 0:
        raise RuntimeError(f"gridgate run bms exited {rc} on SIGTERM:\n{log_path.read_text()}")
    cycles = int(b["cycles"]) - int(a["cycles"])
    cpu_s, wall_s = cpu1 - cpu0, w1 - w0
    return {
        "exit_code": rc,
        "window_s": wall_s,
        "warmup_s": warmup,
        "cycles": cycles,
        "cycles_per_s": cycles / (float(b["updated"]) - float(a["updated"])),
        "cycles_missed": int(b["cycles_missed"]) - int(a["cycles_missed"]),
        "cpu_s": cpu_s,
        "cpu_pct_one_core": 100.0 * cpu_s / wall_s,
        "cpu_ms_per_cycle": 1e3 * cpu_s / cycles,
        "summaries_sent": b.get("summaries_sent"),
        "status_line": b.get("summary"),
        "clk_tck": os.sysconf("SC_CLK_TCK"),
    }


# ----- report --------------------------------------------------------------------------------
def row(what: str, ms: float) -> str:
    return f"| {what} | {ms:.3f} | {1e3 / ms:,.0f} | {RATE_HZ * ms / 10:.2f} |"


def report(res: dict[str, Any]) -> None:
    p, d = res["in_process"], res["daemon"]
    cyc = p["cycle_cpu"]["median_ms"]
    parts = p["parts_cpu"]
    print(f"\nrack: {res['lines']} lines x {res['boards']} boards x {CELLS_PER_BOARD} cells = "
          f"{res['cells']:,} cells over ptys; simulator in its own process")  # fmt: skip
    print()
    print("| what | median CPU ms per cycle | cycles per CPU-second | % of one core at 10 Hz |")
    print("|---|---:|---:|---:|")
    names = {
        "read": "read (CellRack.read: bus I/O + frame parse + decode, one step)",
        DECODE: "... of which decode (protocol.decode_sample, _Buffers.store)",
        "estimate": "estimate (CellEstimator.update)",
        "alarms": "alarms (rest of StringMonitor.step, BoardAlarms.check)",
        "summarise": "summarise (StringMonitor.summary, RackWindow.add)",
        "record": "record (Recorder.write, every Nth cycle)",
    }
    for k, label in names.items():
        if k in parts:
            print(row(f"in process: {label}", parts[k]["median_ms"]))
    print(row("in process: rest of BmsDaemon._cycle", p["rest_cpu"]["median_ms"]))
    print(row("**in process: full cycle (BmsDaemon._cycle)**", cyc))
    wc = p["window_close_cpu"]
    if wc is not None:
        per = wc["median_ms"] / p["cycles_per_window"]
        print(row(f"in process: window close (BmsDaemon._flush) / {p['cycles_per_window']} "
                  "cycles", per))  # fmt: skip
        print(row("**in process: full cycle + window close**", cyc + per))
    print(f"| **daemon process: gridgate run bms at {d['cycles_per_s']:.2f} Hz** "
          f"| {d['cpu_ms_per_cycle']:.3f} | {1e3 / d['cpu_ms_per_cycle']:,.0f} "
          f"| {d['cpu_pct_one_core']:.2f} (measured) |")  # fmt: skip
    print()
    e = p["estimate_dt"]
    boards = res["lines"] * res["boards"]
    print(f"- in process: {p['cycles']} cycles in {p['wall_s']:.1f} s wall "
          f"({p['cycles_per_wall_s']:.0f} cycles/s free running), wall per cycle median "
          f"{p['cycle_wall']['median_ms']:.2f} ms, CPU per cycle p90 "
          f"{p['cycle_cpu']['p90_ms']:.3f} ms, fewest boards answering "
          f"{p['boards_answering_min']}/{boards}")  # fmt: skip
    print(f"- CellEstimator.update alone on the last reading: {e['steady_dt_ms'] * 1e3:.1f} µs "
          f"with a steady dt, {e['changing_dt_ms'] * 1e3:.1f} µs with dt changing every call "
          "(the daemon on its ticker: whole tick periods, steady; the in-process loop here, "
          "no ticker: the measured interval)")  # fmt: skip
    print(f"- daemon process: {d['cycles']} cycles in a {d['window_s']:.1f} s window after "
          f"{d['warmup_s']:.0f} s of start-up (cycle count from its status file), "
          f"{d['cycles_missed']} missed, {d['cpu_s']:.2f} CPU s (utime+stime, "
          f"{1e3 / d['clk_tck']:.0f} ms ticks), exit code on SIGTERM {d['exit_code']}")  # fmt: skip
    m = res["machine"]
    print(f"- machine: {m['cpu_model']}, {m['cores']} cores, benchmark + simulator + daemon "
          f"pinned to CPU {res['cpu']}; load average before {m['load_before']}, after "
          f"{m['load_after']}; Python {m['python']}; {res['date']}")  # fmt: skip
    print(f"- the timers add about {p['timer_overhead_ms']:.2f} ms of CPU to an in-process cycle "
          "(two process_time() calls per timed call); the daemon process has none")  # fmt: skip
    print(f"- medians of the parts do not add up to the median of the cycle; JSON: {OUT}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=5.0, help="in-process free-running time")
    ap.add_argument("--daemon-seconds", type=float, default=30.0, help="daemon's steady window")
    ap.add_argument("--daemon-warmup", type=float, default=5.0, help="daemon start-up skipped")
    ap.add_argument("--lines", type=int, default=4)
    ap.add_argument("--boards", type=int, default=25)
    ap.add_argument("--cpu", type=int, default=0, help="CPU to pin to; -1: do not pin")
    ap.add_argument("--warmup-cycles", type=int, default=10)
    ap.add_argument("--record-every", type=int, default=0, help="0: no [bms.recording]")
    a = ap.parse_args()
    cpu = None if a.cpu < 0 else a.cpu
    pin(0, cpu)
    load_before = loadavg()
    res: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python", *sys.argv]),
        "lines": a.lines,
        "boards": a.boards,
        "cells": a.lines * a.boards * CELLS_PER_BOARD,
        "rate_hz": RATE_HZ,
        "cpu": "not pinned" if cpu is None else cpu,
        "record_every": a.record_every,
    }
    with tempfile.TemporaryDirectory(prefix="bench-bms-") as tmp:
        work = Path(tmp)
        with simulator(a.lines, a.boards, cpu) as paths:
            cfg = write_config(work / "p1", paths, a.boards, a.record_every)
            res["in_process"] = asyncio.run(in_process(cfg, a.seconds, a.warmup_cycles))
        with simulator(a.lines, a.boards, cpu) as paths:
            cfg = write_config(work / "p2", paths, a.boards, a.record_every)
            res["daemon"] = daemon_process(cfg, work / "p2", a.daemon_seconds, a.daemon_warmup, cpu)
    res["machine"] = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": loadavg(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2) + "\n")
    report(res)


if __name__ == "__main__":
    main()
