"""CPU of ``gridgate run plant`` per second of plant data.

The plant simulator (gas turbine, the unit the shipped model was trained on, running warm) serves
its 18 tags over OPC UA on loopback at ``--speed`` plant seconds per wall second, in a thread of
this process; the daemon runs as its own process with ``simulation_speed`` set to match, so it
samples, scores and summarises ``--speed`` times as much plant data per wall second as on a real
PLC. After ``--warmup`` s, CPU (utime + stime from /proc/PID/stat, as bench/footprint.py) and RSS
are read over ``--duration`` s. Result: CPU seconds per plant second, i.e. the fraction of one
core the daemon needs against a real PLC at 1 s sampling.

    python bench/bench_plant_daemon.py --speed 10 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from gateway.sim.plant import PlantModel
from gateway.sim.plant_bench_config import plant_bench_config
from gateway.sim.plant_server import PlantServer
from gateway.sim.toml_text import dumps

OUT = Path(__file__).parent / "out"


def _cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--speed", type=float, default=10.0)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=10.0)
    args = p.parse_args()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    model = PlantModel("gas_turbine", seed=11, start=1_704_067_200.0, dispatch=False, running=True)
    model.run(600)
    server = PlantServer(model=model, speed=args.speed, tick=1.0 / args.speed)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "gridgate.toml"
        config = plant_bench_config(
            Path(tmp) / "state",
            server.url,
            args.speed,
            gateway_id="gw",
            device=None,
            window=60,
            # One sample per plant second, as on a real PLC at 1 s sampling.
            sampling_interval=1.0 / args.speed,
            # The daemon's own timeout and backoff: the server is not restarted here.
            quick_reconnect=False,
            # Quiet: stderr is a pipe nobody reads during the run, and log lines would be CPU
            # counted against the daemon.
            log_level="warning",
        )
        cfg.write_text(dumps(config))
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "-c", str(cfg), "run", "plant"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            time.sleep(args.warmup)
            c0, t0 = _cpu_s(proc.pid), time.monotonic()
            time.sleep(args.duration)
            c1, t1 = _cpu_s(proc.pid), time.monotonic()
            rss = _rss_mb(proc.pid)
            from gateway.core.status import read_status

            st = read_status(Path(tmp) / "state" / "run").get("plant", {})
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    wall = t1 - t0
    plant_s = wall * args.speed
    result = {
        "speed": args.speed,
        "wall_s": round(wall, 1),
        "plant_s": round(plant_s, 1),
        "cpu_s": round(c1 - c0, 2),
        "cpu_s_per_plant_s": round((c1 - c0) / plant_s, 5),
        "cpu_pct_of_core_at_speed": round(100.0 * (c1 - c0) / wall, 1),
        "rss_mb": round(rss, 1),
        # proof the daemon was really fed and scoring during the measurement
        "frames": st.get("frames"),
        "samples": st.get("samples"),
        "samples_missed": st.get("samples_missed"),
        "connection": st.get("connection"),
        "load_avg_1m": os.getloadavg()[0],
    }
    print("| speed | plant s | CPU s | CPU s per plant s | % core at speed | RSS MB | load |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.speed:g} | {result['plant_s']} | {result['cpu_s']} | "
        f"{result['cpu_s_per_plant_s']} | {result['cpu_pct_of_core_at_speed']} | "
        f"{result['rss_mb']} | {result['load_avg_1m']:.2f} |"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "plant_daemon.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
