"""Test helpers around the one broker launcher (:mod:`gateway.sim.broker`): a recording subscriber.

The fixtures (``broker``, ``shared_broker``, ``ids``, ``recorder``) live in ``conftest.py``.
``Broker`` is :class:`gateway.sim.broker.Mosquitto` under the name the tests have always used.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from gateway.sim.broker import BrokerTls, Mosquitto, free_port

Broker = Mosquitto
__all__ = [
    "Address",
    "Broker",
    "BrokerTls",
    "ClientTls",
    "Endpoint",
    "Received",
    "Recorder",
    "TopicIds",
    "free_port",
]


class Address(Protocol):
    """Anything a client can connect to: a broker we run or one CI runs for us."""

    host: str
    port: int


@dataclass(frozen=True)
class Endpoint:
    """A broker this test run does not own (``GRIDGATE_TEST_MQTT``): never stopped by a test."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        host, sep, port = text.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"GRIDGATE_TEST_MQTT must be HOST:PORT, got {text!r}")
        return cls(host, int(port))


@dataclass(frozen=True)
class TopicIds:
    """Names unique to one test on a shared broker: its messages, will and sessions stay apart."""

    site: str
    gateway: str

    @classmethod
    def for_test(cls, test_name: str, run_token: str) -> TopicIds:
        # parametrised names carry '[', '.', '/' and the like; keep topic levels and ids plain
        plain = re.sub(r"[^A-Za-z0-9_-]+", "-", test_name).strip("-")
        return cls(site=f"t{run_token}", gateway=plain[-60:])

    @property
    def prefix(self) -> str:
        return f"gridgate/{self.site}/{self.gateway}"

    def client_id(self, role: str) -> str:
        return f"{role}-{self.site}-{self.gateway}"


@dataclass(frozen=True)
class ClientTls:
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip the host name check, as MqttSettings.tls_insecure does


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
        self,
        broker: Address,
        topic: str = "gridgate/#",
        *,
        persistent: bool = False,
        tls: ClientTls | None = None,
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
        if tls is not None:
            self.client.tls_set(
                ca_certs=str(tls.ca_file),
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            self.client.tls_insecure_set(tls.insecure)
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            self.close()
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
