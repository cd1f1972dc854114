"""End to end: ``gridgate run plant`` and ``gridgate run uplink`` as processes, the plant
simulator's asyncua server (in a thread, so the test can restart it), mosquitto, and an upstream
consumer.

A bearing fault grows on the simulated gas turbine; the early warning must reach upstream through
the spool, the uplink and the broker, naming the bearing, while the PLC is restarted in the middle.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.sim.broker import Mosquitto
from gateway.sim.plant import Fault, PlantModel
from gateway.sim.plant_bench_config import plant_bench_config
from gateway.sim.plant_server import PlantServer
from gateway.sim.toml_text import dumps
from gateway.sim.upstream import Upstream

pytestmark = pytest.mark.hil
T = TypeVar("T")
SPEED = 10.0
WARM_S = 600


class PlantThread:
    """The plant server on its own event loop: the test calls it synchronously."""

    def __init__(self, model: PlantModel) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="plc", daemon=True)
        self._thread.start()
        self.server = PlantServer(model=model, speed=SPEED, tick=0.1)
        self.call(self.server.start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout=30)

    def stop(self) -> None:
        self.call(self.server.stop())
        # Anything left would be destroyed pending when the loop closes: the stopped server
        # must not hold sessions of the daemon (whose connections the mid-test restart cut).
        left = self.call(_pending())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        assert left == [], left


class PlantBench:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.config = workdir / "gridgate.toml"
        self.broker = Mosquitto(workdir / "broker")
        self.upstream: Upstream | None = None
        self.plc: PlantThread | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        self.broker.start()
        self.upstream = Upstream(self.broker.host, self.broker.port)
        self.upstream.start()
        model = PlantModel(
            "gas_turbine",
            seed=11,  # the unit the shipped model was trained on
            start=1_704_067_200.0,
            dispatch=False,
            running=True,
            faults=[Fault("bearing_wear", onset=WARM_S, rate=120.0)],
        )
        model.run(WARM_S)
        self.plc = PlantThread(model)
        config = plant_bench_config(
            self.workdir / "state",
            self.plc.server.url,
            SPEED,
            broker=(self.broker.host, self.broker.port),
            status_interval=0.5,
        )
        self.config.write_text(dumps(config))
        for name in ("plant", "uplink"):
            log = (self.workdir / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "-c", str(self.config), "run", name],
                stdout=log,
                stderr=log,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
            log.close()

    def docs(self, kind: str) -> list[dict[str, Any]]:
        assert self.upstream is not None
        return [d for d in self.upstream.docs(kind) if d.get("daemon") == "plant"]

    def log(self, name: str) -> str:
        p = self.workdir / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def wait_for(self, what: str, pred: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited {proc.returncode}:\n{self.log(name)}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.log('plant')[-3000:]}")

    def stop_daemon(self, name: str) -> int:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
        return proc.returncode

    def stop(self) -> None:
        for name in list(self.procs):
            self.stop_daemon(name)
        if self.upstream is not None:
            self.upstream.stop()
        if self.plc is not None:
            self.plc.stop()
        self.broker.stop()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[PlantBench]:
    b = PlantBench(tmp_path)
    try:
        b.start()
        yield b
    finally:
        b.stop()


def test_early_warning_reaches_upstream_across_a_plc_restart(bench: PlantBench) -> None:
    assert bench.plc is not None
    bench.wait_for("a summary upstream", lambda: bool(bench.docs("summary")))
    first = bench.docs("summary")[-1]["body"]
    assert first["device"] == "gt1" and first["state"] == "running"
    assert first["power_kw"]["mean"] > 1000.0
    # The PLC reboots: the daemon sees it go and come back, and carries on.
    bench.plc.call(bench.plc.server.stop())
    bench.wait_for(
        "a summary while the PLC is away",
        lambda: any(d["body"]["connection"] == "disconnected" for d in bench.docs("summary")),
    )
    bench.plc.call(bench.plc.server.start())
    bench.wait_for(
        "data again after the restart",
        lambda: any(
            d["body"]["connection"] == "subscription" and d["body"]["power_kw"] is not None
            for d in bench.docs("summary")[-2:]
        ),
    )
    bench.wait_for(
        "the early warning upstream",
        lambda: any(
            d["body"]["alarm"] == "anomaly" and d["body"]["state"] == "raised"
            for d in bench.docs("alarm")
        ),
        90.0,
    )
    warning = next(d["body"] for d in bench.docs("alarm") if d["body"]["alarm"] == "anomaly")
    assert warning["severity"] == "warning" and warning["device"] == "gt1"
    assert warning["subsystem"] == "bearing", warning
    top = max(warning["contributions"], key=warning["contributions"].get)
    assert top == "bearing_vibration"
    assert bench.plc.call(_count(bench.plc.server)) == 1  # one subscription, none leaked
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(bench.config), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "plant: running" in out.stdout, out.stdout
    assert "early warning ACTIVE: look at bearing" in out.stdout, out.stdout
    assert bench.stop_daemon("plant") == 0
    counters = (bench.workdir / "state" / "plant-counters.json").read_text()
    assert '"operating_hours"' in counters
    seqs = [d["seq"] for d in bench.docs("summary")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def _count(server: PlantServer) -> int:
    return server.subscription_count()


async def _pending() -> list[str]:
    me = asyncio.current_task()
    return sorted(repr(t.get_coro()) for t in asyncio.all_tasks() if t is not me)
