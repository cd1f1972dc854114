"""A private mosquitto on a free loopback port: the upstream broker of the demo, bench and tests.

The one place that starts a real broker, so ``gridgate demo``, the HIL harness, the footprint bench
and the tests all run it the same way. It can be stopped (with any signal) and started again on the
same port to play a broker outage; with ``persistence`` its sessions and queued messages survive
that restart. ``users`` turns on password authentication, ``tls`` makes the listener TLS only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.core.errors import GatewayError

INSTALL_HINT = "install it with: sudo apt-get install mosquitto (the README's setup does this)"


class BrokerError(GatewayError):
    pass


@dataclass(frozen=True)
class BrokerTls:
    """The broker's TLS listener: its certificate chain, and whether clients must show one."""

    cafile: Path  # CA that client certificates must chain to (and the chain sent to clients)
    certfile: Path
    keyfile: Path
    require_certificate: bool = False


def _find(name: str, candidates: tuple[str, ...]) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if Path(candidate).is_file():
            return candidate
    raise BrokerError(f"{name} not found; {INSTALL_HINT}")


def find_mosquitto() -> str:
    # GRIDGATE_MOSQUITTO names the binary where it is not on PATH or in sbin (a self-built broker).
    explicit = os.environ.get("GRIDGATE_MOSQUITTO")
    if explicit:
        if not Path(explicit).is_file():
            raise BrokerError(
                f"mosquitto not found at GRIDGATE_MOSQUITTO={explicit}; {INSTALL_HINT}"
            )
        return explicit
    return _find("mosquitto", ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"))


def find_mosquitto_passwd() -> str:
    return _find(
        "mosquitto_passwd", ("/usr/bin/mosquitto_passwd", "/usr/local/bin/mosquitto_passwd")
    )


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
    """One mosquitto process; ``stop()`` then ``start()`` keeps the port and the config."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        password_file: Path | None = None,
        *,
        persistence: bool = False,
        users: Mapping[str, str] | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        if users and password_file is not None:
            raise ValueError("give either users or password_file, not both")
        self.binary = find_mosquitto()
        self.workdir = workdir
        self.host = host
        self.port = port or free_port(host)
        self.password_file = password_file
        self.persistence = persistence
        self.users = dict(users or {})
        self.tls = tls
        self.log_path = workdir / "mosquitto.log"
        self.conf_path = workdir / "mosquitto.conf"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def _write_password_file(self) -> Path:
        pwfile = self.workdir / "passwd"
        pwfile.unlink(missing_ok=True)
        pwfile.touch(mode=0o600)
        tool = find_mosquitto_passwd()
        for user, password in self.users.items():
            # -b puts the password on a command line: acceptable for a private test broker only
            done = subprocess.run(
                [tool, "-b", str(pwfile), user, password], capture_output=True, check=False
            )
            if done.returncode != 0:
                raise BrokerError(
                    f"mosquitto_passwd failed for user {user!r}: "
                    f"{done.stderr.decode(errors='replace').strip()}"
                )
        return pwfile

    def _config_lines(self) -> list[str]:
        lines = [
            f"listener {self.port} {self.host}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # a subscriber catching up after an outage must not lose messages to a queue cap
            "max_queued_messages 0",
        ]
        if os.geteuid() == 0:
            # as root mosquitto drops to the 'mosquitto' user, which cannot read the private
            # workdir (password file, keys, persistence) once it has switched
            lines.append("user root")
        if self.persistence:
            store = self.workdir / "persistence"
            store.mkdir(exist_ok=True)
            # autosave only at shutdown: a SIGTERM keeps the store, a SIGKILL loses it, as upstream
            lines += ["persistence true", f"persistence_location {store}/", "autosave_interval 0"]
        else:
            lines.append("persistence false")
        pwfile = self._write_password_file() if self.users else self.password_file
        if pwfile is not None:
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.cafile}",
                f"certfile {self.tls.certfile}",
                f"keyfile {self.tls.keyfile}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
        return lines

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text("\n".join(self._config_lines()) + "\n")
        with self.log_path.open("ab") as log:
            # A session of its own: a Ctrl-C at the terminal (SIGINT to the whole foreground
            # group) must reach only whoever started it, who stops the broker last; stopping with
            # the rest it would publish the uplink's will beside its own "offline".
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = self._proc
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                self._proc = None
                raise BrokerError(
                    f"mosquitto on {self.host}:{self.port} exited ({proc.returncode}): "
                    f"{self._log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise BrokerError(
                    f"mosquitto did not listen on {self.host}:{self.port}: {self._log_tail()}"
                )
            time.sleep(0.02)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-500:].strip()
        except OSError as exc:
            return f"(no log: {exc})"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        """Stop with ``sig`` (SIGKILL plays a crash) and wait; escalates to SIGKILL on a hang."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.stop()
