"""Footprint of the grid daemon and the uplink: RSS and CPU % of one core under a real load.

The load: 10 Modbus TCP meters x 100 holding registers (50 float32 points each) polled at 1 Hz,
summarised every ``--window`` s, spooled with ``synchronous = "full"`` and published to a local
mosquitto, with everything on (limits, report by exception, status files, watchdog loop).
``gridgate run grid`` and ``gridgate run uplink`` run as two processes, as under systemd; the
Modbus devices (bench/footprint_devices.py), mosquitto and the upstream consumer run in other
processes, so their CPU is not counted. Side by side, measured the same way: a bare pymodbus +
paho loop (bench/ref_bare_loop.py) polling the same devices and publishing every reading as JSON.

Each process is measured after ``--warmup`` s for ``--duration`` s: RSS (VmRSS from
/proc/PID/status every second: median and max) and CPU % of one core ((utime + stime) delta from
/proc/PID/stat over the window / wall time). Prints a markdown table, writes
bench/out/footprint.json. Exits 1 only if the path did not work (no summary of every meter
upstream, or no reference message); missing the target is a result, not a failure.

    python bench/footprint.py [--duration 120] [--warmup 10] [--window 10] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import load_config
from gateway.core.status import read_status
from gateway.sim.broker import Mosquitto
from gateway.sim.toml_text import dumps
from gateway.sim.upstream import Upstream

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "footprint.json"
PROFILE = "bench_meter"
TARGET_RSS_MB = 35.0  # per daemon: half the ThingsBoard IoT Gateway's one process (67 MB)
TARGET_CPU_PCT = 1.5  # both daemons together, % of one core
PEER = {"ThingsBoard IoT Gateway 3.8.5": (67.0, 12.0), "bare loop (issue's figure)": (27.0, 0.4)}
_TICK = os.sysconf("SC_CLK_TCK")
_STATUS_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "Threads")


# ---- the config under test ---------------------------------------------------------------------


def _profile(points: int) -> str:
    profile = {
        "profile": {"name": "footprint bench meter", "source": "bench/footprint_devices.py"},
        "defaults": {"table": "holding", "type": "f32", "order": "ABCD"},
        "points": [{"name": f"p{i:02d}", "address": 2 * i, "unit": "V"} for i in range(points)],
    }
    header = "# Written by bench/footprint.py: one benchmark meter, float32 points end to end.\n"
    return header + dumps(profile)


def _config(workdir: Path, broker: Mosquitto, modbus_port: int, devices: int, window: float) -> str:
    meter = {"profile": PROFILE, "transport": "tcp", "host": "127.0.0.1", "port": modbus_port}
    polling = {"poll_interval": 1.0, "timeout": 0.5}
    config = {
        "gateway": {
            "site": "bench",
            "id": "footprint",
            "state_dir": str(workdir / "state"),
            "log_level": "info",
        },
        "spool": {"max_mb": 64, "synchronous": "full"},
        "uplink": {"host": broker.host, "port": broker.port, "protocol": "5", "tls": False},
        "grid": {
            "window": window,
            "integrity_every": 10,
            "profile_dirs": ["profiles"],
            # Limits the values never cross: the alarm check runs every poll, no alarm is raised.
            "limits": {"p00": {"low": 200.0, "high": 260.0, "deadband": 0.5}},
            "meters": {
                f"m{unit:02d}": {**meter, "unit_id": unit, **polling}
                for unit in range(1, devices + 1)
            },
        },
    }
    return "# Written by bench/footprint.py.\n" + dumps(config)


# ---- processes and their measurement -----------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    rss_kb: list[int] = field(default_factory=list)
    cpu0: int = 0
    cpu1: int = 0
    status_end: dict[str, int] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid


def _cpu_ticks(pid: int) -> int:
    # utime and stime are fields 14 and 15; the command name (field 2) may contain spaces.
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _status_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in _STATUS_KEYS and parts:
            out[key] = int(parts[0])
    return out


def _pss_kb(pid: int) -> int:
    # Proportional set size: shared pages (libpython, numpy, libcrypto) split among the processes
    # mapping them, so the daemons' PSS add up to what they cost the machine together.
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _spawn(name: str, cmd: list[str], logdir: Path) -> Proc:
    log = (logdir / f"{name}.log").open("wb")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    popen = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=HERE.parent)
    log.close()
    return Proc(name, popen)


def _stop(popen: subprocess.Popen[Any] | None, timeout: float = 15.0) -> None:
    if popen is None or popen.poll() is not None:
        return
    popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


class _Counter:
    """Counts the reference loop's messages on ``bare/#``."""

    def __init__(self, host: str, port: int) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare-counter")
        self._client.on_connect = lambda c, *_a: c.subscribe("bare/#", qos=0)
        self._client.on_subscribe = lambda *_a: self._ready.set()
        self._client.on_message = self._message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._ready.wait(10):
            raise TimeoutError("bare counter could not subscribe")

    def _message(self, *_a: Any) -> None:
        with self._lock:
            self.count += 1

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _start_devices(
    workdir: Path, devices: int, points: int
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    cmd = [
        sys.executable, str(HERE / "footprint_devices.py"), "--devices", str(devices),
        "--points", str(points), "--stats", str(workdir / "requests.json"),
    ]  # fmt: skip
    err = (workdir / "devices.log").open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    err.close()
    ports: dict[str, int] = {}
    out: IO[str] = proc.stdout  # type: ignore[assignment]
    while len(ports) < 2:
        line = out.readline()
        if not line:
            raise RuntimeError(f"device server exited: see {workdir / 'devices.log'}")
        if line.startswith("listening "):
            _, label, addr = line.split()
            ports[label] = int(addr.rsplit(":", 1)[1])
    return proc, ports


# ---- reporting ---------------------------------------------------------------------------------


def _row(p: Proc, wall: float) -> dict[str, Any]:
    rss = [kb / 1024 for kb in p.rss_kb]
    end = p.status_end
    return {
        "process": p.name,
        "rss_median_mb": round(statistics.median(rss), 1),
        "rss_max_mb": round(max(rss), 1),
        "rss_anon_mb": round(end.get("RssAnon", 0) / 1024, 1),
        "rss_file_mb": round(end.get("RssFile", 0) / 1024, 1),
        "vm_hwm_mb": round(end.get("VmHWM", 0) / 1024, 1),
        "pss_mb": round(end.get("Pss", 0) / 1024, 1),
        "threads": end.get("Threads", 0),
        "cpu_pct": round(100.0 * (p.cpu1 - p.cpu0) / _TICK / wall, 2),
        "samples": len(rss),
    }


def _table(rows: list[dict[str, Any]], both: dict[str, float]) -> str:
    out = [
        "| process | RSS median MB | RSS max MB | PSS MB | anon / file MB | threads "
        "| CPU % of one core | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        target = f"<= {TARGET_RSS_MB:g} MB" if r["process"].startswith("gridgate") else "reference"
        out.append(
            f"| {r['process']} | {r['rss_median_mb']:.1f} | {r['rss_max_mb']:.1f} | "
            f"{r['pss_mb']:.1f} | {r['rss_anon_mb']:.1f} / {r['rss_file_mb']:.1f} | "
            f"{r['threads']} | {r['cpu_pct']:.2f} | {target} |"
        )
    out.append(
        f"| **gridgate grid + uplink** | {both['rss_median_mb']:.1f} | "
        f"{both['rss_max_mb']:.1f} | {both['pss_mb']:.1f} | | | **{both['cpu_pct']:.2f}** | "
        f"CPU <= {TARGET_CPU_PCT:g} % together |"
    )
    for name, (mb, pct) in PEER.items():
        out.append(f"| {name} (issue, not measured here) | {mb:g} | | | | | {pct:g} | peer |")
    return "\n".join(out)


def _machine() -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next(
        (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "platform": platform.platform(),
    }


# ---- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="gridgate-footprint-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logdir = workdir / "logs"
    logdir.mkdir(exist_ok=True)
    broker = Mosquitto(workdir / "broker")
    devices_proc: subprocess.Popen[str] | None = None
    procs: list[Proc] = []
    upstream: Upstream | None = None
    counter: _Counter | None = None
    try:
        broker.start()
        devices_proc, ports = _start_devices(workdir, args.devices, args.points)
        (workdir / "profiles").mkdir(exist_ok=True)
        (workdir / "profiles" / f"{PROFILE}.toml").write_text(_profile(args.points))
        cfg_path = workdir / "gridgate.toml"
        cfg_path.write_text(_config(workdir, broker, ports["gridgate"], args.devices, args.window))
        cfg = load_config(cfg_path)
        assert cfg.sections["grid"] is not None
        plan_requests = {m.name: len(m.plan.requests) for m in cfg.sections["grid"].meters.values()}
        upstream = Upstream(broker.host, broker.port)
        upstream.start()
        counter = _Counter(broker.host, broker.port)

        gg = [sys.executable, "-m", "gateway.cli", "-c", str(cfg_path), "run"]
        ref = [sys.executable, str(HERE / "ref_bare_loop.py"), str(ports["ref"]), str(broker.port)]
        procs = [
            _spawn("gridgate grid", [*gg, "grid"], logdir),
            _spawn("gridgate uplink", [*gg, "uplink"], logdir),
            _spawn("bare pymodbus+paho loop", [*ref, "--devices", str(args.devices)], logdir),
        ]
        print(f"footprint: warm-up {args.warmup:g} s, files in {workdir}", file=sys.stderr)
        time.sleep(args.warmup)
        for p in procs:
            if p.popen.poll() is not None:
                raise RuntimeError(f"{p.name} exited ({p.popen.returncode}); see {logdir}")
            p.cpu0 = _cpu_ticks(p.pid)
        docs0 = len(upstream.docs())
        bare0 = counter.count
        t0 = time.monotonic()
        print(f"footprint: measuring for {args.duration:g} s", file=sys.stderr)
        next_at = t0
        while (now := time.monotonic()) < t0 + args.duration:
            for p in procs:
                if p.popen.poll() is not None:
                    raise RuntimeError(f"{p.name} exited ({p.popen.returncode}); see {logdir}")
                p.rss_kb.append(_status_kb(p.pid)["VmRSS"])
            next_at += 1.0
            time.sleep(max(0.0, min(next_at, t0 + args.duration) - now))
        for p in procs:
            p.cpu1 = _cpu_ticks(p.pid)
            p.status_end = {**_status_kb(p.pid), "Pss": _pss_kb(p.pid)}
        wall = time.monotonic() - t0
        docs1 = len(upstream.docs())
        bare1 = counter.count
        for p in procs:
            _stop(p.popen)
        time.sleep(1.0)  # the grid's last partial window, forwarded before the uplink stopped
        _stop(devices_proc)
        requests = json.loads((workdir / "requests.json").read_text())
        status = read_status(cfg.gateway.runtime_dir)
        polls = sum(m["polls"] for m in status.get("grid", {}).get("meters", {}).values())
        docs = upstream.docs()
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"footprint: {exc}", file=sys.stderr)
        return 1
    finally:
        for p in procs:
            _stop(p.popen)
        _stop(devices_proc)
        for c in (upstream, counter):
            if c is not None:
                c.stop()
        broker.stop()

    rows = [_row(p, wall) for p in procs]
    ours = rows[:2]
    both = {
        "rss_median_mb": round(sum(r["rss_median_mb"] for r in ours), 1),
        "rss_max_mb": round(sum(r["rss_max_mb"] for r in ours), 1),
        "pss_mb": round(sum(r["pss_mb"] for r in ours), 1),
        "cpu_pct": round(sum(r["cpu_pct"] for r in ours), 2),
    }
    summaries = [d for d in docs if d.get("kind") == "summary"]
    meters_seen = sorted({d["body"]["device"] for d in summaries})
    wire = sum(requests["gridgate"].values())
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join(["python", "bench/footprint.py", *sys.argv[1:]]),
        "machine": _machine(),
        "load": {
            "devices": args.devices,
            "registers_per_device": 2 * args.points,
            "points_per_device": args.points,
            "poll_interval_s": 1.0,
            "window_s": args.window,
            "spool_synchronous": "full",
            "warmup_s": args.warmup,
            "duration_s": round(wall, 1),
        },
        "processes": rows,
        "gridgate_total": both,
        "target": {"rss_mb_each": TARGET_RSS_MB, "cpu_pct_together": TARGET_CPU_PCT},
        "meets_target": {
            "rss": all(r["rss_max_mb"] <= TARGET_RSS_MB for r in ours),
            "cpu": both["cpu_pct"] <= TARGET_CPU_PCT,
        },
        "path": {
            "upstream_messages_in_window": docs1 - docs0,
            "upstream_messages_total": len(docs),
            "summaries_total": len(summaries),
            "meters_with_summaries": meters_seen,
            "bare_messages_in_window": bare1 - bare0,
            "plan_requests_per_poll": plan_requests,
            "wire_requests_gridgate": wire,
            "grid_polls": polls,
            "wire_requests_per_poll": round(wire / polls, 3) if polls else None,
            "wire_requests_ref": sum(requests["ref"].values()),
        },
        "peer_issue_figures": {k: {"rss_mb": v[0], "cpu_pct": v[1]} for k, v in PEER.items()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    path = result["path"]
    print(
        f"{args.devices} Modbus TCP devices x {2 * args.points} holding registers at 1 Hz, "
        f"window {args.window:g} s, spool synchronous=full, measured {wall:.0f} s after a "
        f"{args.warmup:g} s warm-up\n"
    )
    print(_table(rows, both))
    print(
        f"\npath: {path['upstream_messages_in_window']} messages upstream in the window "
        f"({len(summaries)} summaries in all, from {len(meters_seen)}/{args.devices} meters); "
        f"reference: {path['bare_messages_in_window']} messages; Modbus requests per device poll: "
        f"plan {max(plan_requests.values())}, on the wire {path['wire_requests_per_poll']} "
        f"({wire} requests / {polls} polls)"
    )
    print(f"wrote {OUT}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = len(meters_seen) == args.devices and path["bare_messages_in_window"] > 0
    if not ok:
        print("footprint: the path did not work (see above)", file=sys.stderr)
    return 0 if ok else 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=120.0, help="measured seconds (default 120)")
    p.add_argument("--warmup", type=float, default=10.0, help="unmeasured start (default 10 s)")
    p.add_argument("--window", type=float, default=10.0, help="summary window s (default 10)")
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--points", type=int, default=50, help="float32 points per device")
    p.add_argument("--workdir", type=Path, default=None, help="keep config, spool and logs here")
    sys.exit(run(p.parse_args()))


if __name__ == "__main__":
    main()
