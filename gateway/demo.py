"""``gridgate demo``: the whole path on a simulated bench, nothing to configure.

A private mosquitto, the feeder simulator (Modbus TCP), and ``gridgate run all`` are started as
separate processes, exactly as on a gateway; this process subscribes like an upstream consumer and
prints one line per message until Ctrl-C or ``--duration``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from gateway.sim.broker import BrokerError, Mosquitto
from gateway.sim.feeder import default_feeder
from gateway.sim.toml_text import dumps
from gateway.sim.upstream import Upstream, render

EX_UNAVAILABLE = 69
SITE, GATEWAY_ID = "demo", "bench-1"


def _demo_config(
    state_dir: Path, broker: Mosquitto, sim_port: int, meters: dict[str, int], window: float
) -> str:
    meter = {"profile": "eastron_sdm630", "transport": "tcp", "host": "127.0.0.1", "port": sim_port}
    polling = {"poll_interval": 1.0, "timeout": 0.5}
    config = {
        "gateway": {
            "site": SITE,
            "id": GATEWAY_ID,
            "state_dir": str(state_dir),
            "status_interval": 2,
        },
        "spool": {"max_mb": 16},
        "uplink": {"host": broker.host, "port": broker.port, "protocol": "5", "tls": False},
        "grid": {
            "window": window,
            "integrity_every": 6,
            "limits": {
                f"voltage_l{phase}": {"low": 207.0, "high": 253.0, "deadband": 0.3}
                for phase in (1, 2, 3)
            },
            "meters": {
                name: {**meter, "unit_id": unit, **polling} for name, unit in meters.items()
            },
        },
    }
    return "# Written by gridgate demo: the simulated bench of one LV feeder.\n" + dumps(config)


def _start_sim(workdir: Path, speed: float) -> tuple[subprocess.Popen[str], int, dict[str, int]]:
    # Start the simulated day at 06:00 so the demo shows the morning: load rising, then PV.
    start = dt.datetime.now().replace(hour=6, minute=0, second=0, microsecond=0).timestamp()
    cmd = [
        sys.executable, "-m", "gateway.sim.grid_server",
        "--port", "0", "--speed", str(speed), "--start", str(start),
    ]  # fmt: skip
    err = (workdir / "simulator.log").open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    err.close()
    port = 0
    meters: dict[str, int] = {}
    expected = len(default_feeder().cabinets) + 1  # the head and one meter per cabinet
    out: IO[str] = proc.stdout  # type: ignore[assignment]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (port and len(meters) >= expected):
        line = out.readline()
        if not line:
            raise RuntimeError(f"simulator exited: see {workdir / 'simulator.log'}")
        if line.startswith("listening on"):
            port = int(line.rsplit(":", 1)[1])
        elif line.startswith("meter "):
            _, name, _, unit = line.split()
            meters[name] = int(unit)
    if not (port and len(meters) >= expected):
        proc.terminate()
        raise RuntimeError("simulator did not start within 30 s")
    return proc, port, meters


def _stop(
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


def run_demo(duration: float | None, speed: float, workdir: Path | None) -> int:
    keep = workdir is not None
    base = workdir or Path(tempfile.mkdtemp(prefix="gridgate-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        broker = Mosquitto(base / "broker")
    except BrokerError as exc:
        print(f"gridgate demo: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    sim = daemons = None
    upstream: Upstream | None = None
    printed = threading.Lock()

    def show(msg: object) -> None:
        with printed:
            print(render(msg), flush=True)  # type: ignore[arg-type]

    stop = threading.Event()
    old_int = signal.signal(signal.SIGINT, lambda *_: stop.set())
    old_term = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        broker.start()
        sim, sim_port, meters = _start_sim(base, speed)
        config = base / "gridgate.toml"
        config.write_text(_demo_config(base / "state", broker, sim_port, meters, window=5.0))
        upstream = Upstream(broker.host, broker.port, on_message=show)
        upstream.start()
        log = (base / "gridgate.log").open("w")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        daemons = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "-c", str(config), "run", "all"],
            stdout=log, stderr=log, env=env,
        )  # fmt: skip
        log.close()
        print(
            f"gridgate demo: broker {broker.host}:{broker.port}, simulator 127.0.0.1:{sim_port} "
            f"({', '.join(meters)}), {speed:g}x simulated time; files in {base}",
            flush=True,
        )
        print("messages upstream (Ctrl-C to stop):", flush=True)
        deadline = time.monotonic() + duration if duration is not None else None
        while not stop.is_set():
            if daemons.poll() is not None:
                print(
                    f"gridgate demo: the daemons exited ({daemons.returncode}); "
                    f"see {base / 'gridgate.log'}",
                    file=sys.stderr,
                )
                return 1
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.2)
        _stop(daemons)
        time.sleep(0.5)  # the uplink's last messages and its "offline"
        docs = upstream.docs()
        seqs = [d["seq"] for d in docs]
        dups = len(seqs) - len(set(seqs))
        kinds = {k: sum(1 for d in docs if d.get("kind") == k) for k in ("summary", "alarm")}
        print(
            f"gridgate demo: {len(docs)} messages upstream ({kinds['summary']} summaries, "
            f"{kinds['alarm']} alarms), {dups} duplicate(s)",
            flush=True,
        )
        return 0
    except (BrokerError, RuntimeError, TimeoutError) as exc:
        print(f"gridgate demo: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        _stop(daemons)
        _stop(sim)
        if upstream is not None:
            with contextlib.suppress(Exception):
                upstream.stop()
        broker.stop()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
