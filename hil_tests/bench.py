"""The HIL harness: a bench file, the devices it describes, and the real daemons as processes.

On a simulated bench the harness runs the grid simulator (in a thread with its own event loop, so
tests can inject faults) and tells the daemons where it listens; on a hardware bench it takes the
devices' addresses from the file. Either way it starts a private mosquitto upstream, writes a
gridgate config, and runs ``gridgate run grid`` and ``gridgate run uplink`` as separate processes,
as systemd would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.sim.broker import Mosquitto
from gateway.sim.feeder import FeederModel
from gateway.sim.grid_server import GridSimulator, MeterModel, default_meters
from gateway.sim.lv_feeder import LvFeederModel
from gateway.sim.toml_text import dumps
from gateway.sim.upstream import Upstream
from hil_tests.loop_thread import LoopThread

T = TypeVar("T")
SITE, GATEWAY_ID = "bench", "gw-hil"
DEFAULT_BENCH = Path(__file__).parent / "benches" / "sim.toml"


def bench_file() -> Path:
    return Path(os.environ.get("GRIDGATE_BENCH", str(DEFAULT_BENCH)))


class SimThread(LoopThread):
    """The grid simulator on its own event loop in a thread: tests call it synchronously."""

    def __init__(
        self, seed: int, speed: float, profile: str, feeder: str = "street", start: float = 0.0
    ) -> None:
        super().__init__("grid-sim")
        model: MeterModel
        if feeder == "ieee-eu-lv":
            model = LvFeederModel(seed, start or time.time())
        else:
            model = FeederModel(seed, start or time.time() - 6 * 3600)
        self.model = model
        self.sim = GridSimulator("127.0.0.1", 0, default_meters(model, profile), model, speed=speed)
        self.port = self.call(self.sim.start())

    def stop(self) -> None:
        self.call(self.sim.stop())
        self.close_loop()


class Bench:
    def __init__(self, workdir: Path, path: Path | None = None) -> None:
        self.path = path or bench_file()
        self.spec = tomllib.loads(self.path.read_text())
        self.kind = self.spec.get("bench", {}).get("kind", "simulated")
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.config = workdir / "gridgate.toml"
        self.broker = Mosquitto(workdir / "broker")
        self.sim: SimThread | None = None
        self.upstream: Upstream | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.meters: dict[str, dict[str, Any]] = {}

    @property
    def simulated(self) -> bool:
        return self.kind == "simulated"

    def start_devices(self) -> None:
        if self.simulated:
            s = self.spec.get("simulator", {}).get("grid", {})
            self.sim = SimThread(
                int(s.get("seed", 1)),
                float(s.get("speed", 60.0)),
                s.get("profile", "eastron_sdm630"),
                s.get("feeder", "street"),
                float(s.get("start", 0.0)),
            )
            for name, (_h, port, unit) in self.sim.sim.endpoints().items():
                self.meters[name] = {
                    "profile": s.get("profile", "eastron_sdm630"),
                    "transport": "tcp",
                    "host": "127.0.0.1",
                    "port": port,
                    "unit_id": unit,
                }
        else:
            for entry in self.spec.get("meters", []):
                meter = dict(entry)
                self.meters[meter.pop("name")] = meter

    def write_config(self, estimation: dict[str, Any] | None = None, **grid_overrides: Any) -> None:
        g = {**self.spec.get("grid", {}), **grid_overrides}
        poll = {"poll_interval": g.get("poll_interval", 1.0), "timeout": g.get("timeout", 1.0)}
        grid: dict[str, Any] = {
            "window": g.get("window", 3.0),
            "integrity_every": 1,
            "limits": {f"voltage_l{phase}": {"low": 207.0, "high": 253.0} for phase in (1, 2, 3)},
            "meters": {name: {**m, **poll} for name, m in self.meters.items()},
        }
        if estimation is not None:
            grid["estimation"] = estimation
        config: dict[str, Any] = {
            "gateway": {
                "site": SITE,
                "id": GATEWAY_ID,
                "state_dir": str(self.state_dir),
                "status_interval": 0.5,
            },
            "spool": {"max_mb": 16},
            "uplink": {
                "host": self.broker.host,
                "port": self.broker.port,
                "tls": False,  # the loopback test broker is plain MQTT
                "keepalive": 5,
                "inflight": 10,
            },
            "grid": grid,
        }
        if buses := self.spec.get("buses"):
            config["modbus"] = {"buses": buses}
        self.config.write_text(dumps(config))

    def start(self, daemons: tuple[str, ...] = ("grid", "uplink")) -> None:
        self.broker.start()
        self.upstream = Upstream(self.broker.host, self.broker.port)
        self.upstream.start()
        self.start_devices()
        self.write_config()
        for name in daemons:
            self.start_daemon(name)

    def start_daemon(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "-c", str(self.config), "run", name],
            stdout=log,
            stderr=log,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
        )
        log.close()
        self.procs[name] = proc
        return proc

    def signal(self, name: str, sig: int) -> None:
        self.procs[name].send_signal(sig)

    def stop_daemon(self, name: str, timeout: float = 20.0) -> int:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
        return proc.returncode

    def log(self, name: str) -> str:
        p = self.workdir / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def wait_for(self, what: str, pred: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(
                        f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                        + self.log(name)[-3000:]
                    )
            time.sleep(0.1)
        logs = "\n".join(f"--- {n}\n{self.log(n)[-2000:]}" for n in ("grid", "uplink"))
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")

    def stop(self) -> None:
        for name in list(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop_daemon(name)
        if self.upstream is not None:
            self.upstream.stop()
        if self.sim is not None:
            self.sim.stop()
        self.broker.stop()
