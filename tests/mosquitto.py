"""A real mosquitto broker on a free loopback port, and a recording QoS 1 subscriber.

Import the fixtures from here in a test module (``from tests.mosquitto import broker``) until the
integrator merges them into ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One mosquitto process; ``stop()`` and ``start()`` again keep the same port."""

    def __init__(
        self,
        workdir: Path,
        *,
        persistence: bool = False,
        users: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            # as root mosquitto would switch to the 'mosquitto' user and lose the tmp dir
            "user root",
            "max_queued_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 0"]
        else:
            lines.append("persistence false")
        if users:
            pwfile = workdir / "passwd"
            for i, (user, pw) in enumerate(users.items()):
                flags = ["-b", "-c"] if i == 0 else ["-b"]
                subprocess.run([MOSQUITTO_PASSWD, *flags, str(pwfile), user, pw], check=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = workdir / "mosquitto.log"

    def start(self, timeout: float = 5.0) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@dataclass(frozen=True)
class Received:
    topic: str
    seq: int | None  # None for non-JSON messages (status)
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on arrival


class Recorder:
    """An upstream consumer: subscribes with QoS 1 and records every message in arrival order.

    ``persistent=True`` uses a fixed client id and a persistent session, so a broker with
    persistence queues messages for it while it reconnects after a broker restart.
    """

    def __init__(
        self, broker: Broker, topic: str = "gridgate/#", *, persistent: bool = False
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.topic = topic
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"recorder-{broker.port}" if persistent else "",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise RuntimeError("recorder: no SUBACK")

    def _on_connect(
        self, client: paho.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, *_args: object) -> None:
        self._subscribed.set()

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        seq = None
        with contextlib.suppress(ValueError):
            doc = json.loads(msg.payload)
            if isinstance(doc, dict):
                seq = doc.get("seq")
        with self._lock:
            self.messages.append(
                Received(msg.topic, seq, bytes(msg.payload), bool(msg.retain), time.monotonic())
            )

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def seqs(self) -> list[int]:
        return [m.seq for m in self.snapshot() if m.seq is not None]

    def wait_for(self, want: set[int], timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.seqs()
            if want <= set(got):
                return got
            time.sleep(0.05)
        got = self.seqs()
        missing = sorted(want - set(got))
        raise AssertionError(f"{len(missing)} seqs never arrived, first {missing[:10]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
