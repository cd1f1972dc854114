"""The BMS bench: the rack simulator on ptys (in a thread with its own event loop, so tests can
inject faults) and ``gridgate run bms`` as a separate process, as systemd would run it. Rows are
read back from the daemon's spool file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway.sim.bms_bench_config import bms_bench_config
from gateway.sim.cells import Chemistry
from gateway.sim.rack import RackSim, RackSpec
from gateway.sim.rack_server import RackServer
from gateway.sim.toml_text import dumps
from gateway.spool.store import Spool
from hil_tests.loop_thread import LoopThread

T = TypeVar("T")


class RackThread(LoopThread):
    def __init__(self, spec: RackSpec) -> None:
        super().__init__("rack")
        self.sim = RackSim(spec)
        self.server = RackServer(self.sim, speed=1.0)
        self.call(self.server.__aenter__())

    def stop(self) -> None:
        self.call(self.server.stop())
        self.close_loop()


class BmsBench:
    def __init__(self, workdir: Path, *, mode: str = "advisory", boards: int = 4) -> None:
        self.workdir = workdir
        self.spec = RackSpec(lines=2, boards_per_line=boards, chemistry=Chemistry.NMC, seed=5)
        self.mode = mode
        self.config = workdir / "gridgate.toml"
        self.state = workdir / "state"
        self.rack: RackThread | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.rack = RackThread(self.spec)
        config = bms_bench_config(
            self.state,
            self.rack.server.paths,
            self.spec.boards_per_line,
            mode=self.mode,
            record_every=5,
        )
        self.config.write_text(dumps(config))
        self.start_daemon()

    def start_daemon(self) -> None:
        log = (self.workdir / "bms.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "-c", str(self.config), "run", "bms"],
            stdout=log,
            stderr=log,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        log.close()

    def log(self) -> str:
        p = self.workdir / "bms.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def rows(self, kind: str) -> list[dict[str, Any]]:
        path = self.state / "spool.sqlite"
        if not path.exists():
            return []
        with Spool(path, max_bytes=256_000_000) as sp:
            return [json.loads(r.payload) for r in sp.peek(0, 100_000) if r.kind == kind]

    def wait_for(self, what: str, pred: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"bms exited with {self.proc.returncode}:\n{self.log()[-3000:]}"
                )
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.log()[-3000:]}")

    def stop_daemon(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop_daemon()
        if self.rack is not None:
            self.rack.stop()
