"""A private mosquitto on a free loopback port: the upstream broker of the demo and the bench.

Used by ``gridgate demo``, the HIL harness and the tests, so all three start the real broker the
same way. It can be stopped and started again on the same port to play a broker outage.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

from gateway.core.errors import GatewayError

INSTALL_HINT = "install it with: sudo apt-get install mosquitto (the README's setup does this)"


class BrokerError(GatewayError):
    pass


def find_mosquitto() -> str:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if Path(candidate).is_file():
            return candidate
    raise BrokerError(f"mosquitto broker binary not found; {INSTALL_HINT}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Mosquitto:
    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        password_file: Path | None = None,
    ) -> None:
        self.binary = find_mosquitto()
        self.workdir = workdir
        self.host = host
        self.port = port or free_port(host)
        self.password_file = password_file
        self.log_path = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_conf(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        lines = [f"listener {self.port} {self.host}", "persistence false", "log_dest stderr"]
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self._write_conf()
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log, stderr=log)
        log.close()
        try:
            wait_for_port(self.host, self.port, timeout)
        except OSError as exc:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-500:]
            raise BrokerError(
                f"mosquitto did not listen on {self.host}:{self.port}: {tail}"
            ) from exc

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.stop()
