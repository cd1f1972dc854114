"""An upstream consumer of gridgate's MQTT messages: what SCADA or a cloud service would be.

The demo prints what it receives; the bench tests record it and check order, gaps and duplicates
by each message's spool ``seq``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retained: bool
    arrived: float

    def doc(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.payload)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None


def _fmt(x: Any, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _mean(points: dict[str, Any], name: str) -> float | None:
    p = points.get(name)
    return p.get("mean") if isinstance(p, dict) else None


def render(msg: Received) -> str:
    """One compact line for a message: topic, seq and the few numbers a person looks at."""
    doc = msg.doc()
    clock = time.strftime("%H:%M:%S", time.localtime(msg.arrived))
    if doc is None:
        return f"{clock} {msg.topic}  {msg.payload[:60].decode(errors='replace')}"
    body = doc.get("body", {})
    seq = f"#{doc.get('seq')}"
    kind = doc.get("kind")
    if kind == "summary":
        pts = body.get("points", {})
        # Report by exception leaves out what did not move: show only what came.
        parts = [
            f"U{p} {_fmt(v)} V" for p in (1, 2, 3) if (v := _mean(pts, f"voltage_l{p}")) is not None
        ]
        parts += [
            f"P{p} {_fmt(v / 1000, 2)} kW"
            for p in (1, 2, 3)
            if (v := _mean(pts, f"power_l{p}")) is not None
        ]
        detail = " ".join(parts) if parts else "nothing moved past its deadband"
        what = "full" if body.get("full") else f"{len(pts)} changed"
        return (
            f"{clock} {msg.topic} {seq} {body.get('device')}: {detail}  "
            f"({body.get('good')} good, {body.get('bad')} bad, {what})"
        )
    if kind == "alarm":
        point = (
            f" {body['point']}={_fmt(body.get('value'))} (limit {body.get('limit')})"
            if "point" in body
            else ""
        )
        cause = f" ({body['cause']})" if "cause" in body else ""
        return (
            f"{clock} {msg.topic} {seq} ALARM {body.get('alarm')} {body.get('state')}: "
            f"{body.get('device')}{point}{cause}"
        )
    return f"{clock} {msg.topic} {seq} {json.dumps(body, separators=(',', ':'))[:100]}"


class Upstream:
    """Subscribes to ``gridgate/#`` with QoS 1 and keeps every message (thread-safe)."""

    def __init__(
        self, host: str, port: int, on_message: Callable[[Received], None] | None = None
    ) -> None:
        self._host, self._port = host, port
        self._on_message = on_message
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"upstream-{port}-{time.monotonic_ns()}"
        )
        self._client.on_connect = self._connected
        self._client.on_subscribe = lambda *_a: self._subscribed.set()
        self._client.on_message = self._message

    def _connected(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if not rc.is_failure:
            client.subscribe("gridgate/#", qos=1)

    def _message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        rec = Received(m.topic, bytes(m.payload), bool(m.retain), time.time())
        with self._lock:
            self._messages.append(rec)
        if self._on_message is not None:
            self._on_message(rec)

    def start(self, timeout: float = 10.0) -> None:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise TimeoutError(
                f"upstream consumer could not subscribe at {self._host}:{self._port}"
            )

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def docs(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Parsed gridgate messages (not the retained status), optionally of one kind."""
        out = []
        for m in self.messages():
            doc = m.doc()
            if doc is not None and "seq" in doc and (kind is None or doc.get("kind") == kind):
                out.append(doc)
        return out
