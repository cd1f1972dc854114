"""One MQTT session over paho-mqtt 2.x, driven by the asyncio loop instead of paho's thread.

paho's socket callbacks register its socket with ``loop.add_reader``/``add_writer`` and a small task
calls ``loop_misc`` for keepalive, the way aiomqtt does it; paho's callbacks resolve futures, so
``await session.publish(...)`` returns when the PUBACK is in and ``await session.connect()`` when
the CONNACK is. Whatever way the connection ends, every pending future is failed: nothing waits
forever on a dead socket.

A session is single use: after it is lost, make a new one. Redelivery is the spool's job (it
keeps every row until acked), so paho's own session state is never carried over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from gateway.core.errors import GatewayError

log = logging.getLogger(__name__)

Protocol = Literal["3.1.1", "5"]
_MISC_INTERVAL_S: Final = 1.0  # keepalive resolution; paho's own loop uses the same
_WITH_WILL: Final = ReasonCode(PacketTypes.DISCONNECT, identifier=0x04)  # MQTT 5 DISCONNECT


class MqttError(GatewayError):
    """The MQTT session failed; the message names the broker and the cause."""


class MqttConnectError(MqttError):
    """The broker answered CONNACK with a refusal (bad credentials, not authorised, ...)."""

    def __init__(self, message: str, reason_code: int, reason: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.reason = reason


class MqttConnectionLostError(MqttError):
    """The connection closed (or never came up) while something was waiting on it."""


class MqttPublishError(MqttError):
    """The broker refused a publish (MQTT 5 PUBACK with a failure reason code)."""


@dataclass(frozen=True)
class MqttSettings:
    """How to reach the broker.

    TLS is on when ``use_tls`` is set or ``ca_file``/``cert_file`` is given; without ``ca_file``
    the system trust store verifies the broker. (The config turns ``use_tls`` on unless it says
    ``tls = false``; this low-level default stays off for the loopback test brokers.)
    """

    host: str
    port: int = 1883
    protocol: Protocol = "3.1.1"
    client_id: str = ""
    keepalive: int = 60
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a repr or a log line
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    use_tls: bool = False
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.protocol not in ("3.1.1", "5"):
            raise ValueError(f"protocol must be '3.1.1' or '5', got {self.protocol!r}")
        if self.key_file and not self.cert_file:
            raise ValueError("key_file given without cert_file")

    @property
    def tls(self) -> bool:
        return bool(self.use_tls or self.ca_file or self.cert_file)

    @property
    def where(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Will:
    """The last will the broker publishes if the session dies without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class MqttSession:
    """One connection to the broker: ``await connect()``, publish, ``await disconnect()``."""

    def __init__(self, settings: MqttSettings, will: Will | None = None) -> None:
        self.settings = settings
        v5 = settings.protocol == "5"
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else True,
        )
        self._client.connect_timeout = settings.connect_timeout
        # The forwarder bounds the window itself; paho must never hold messages back on its own.
        self._client.max_inflight_messages_set(65535)
        self._client.max_queued_messages_set(0)
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            self._client.tls_set(
                ca_certs=settings.ca_file,  # None: the system store (SSL_CERT_FILE/_DIR honoured)
                certfile=settings.cert_file,
                keyfile=settings.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            self._client.tls_insecure_set(settings.tls_insecure)
        if will is not None:
            self._client.will_set(will.topic, will.payload, will.qos, will.retain)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_socket_open = self._on_socket_open
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_socket_register_write
        self._client.on_socket_unregister_write = self._on_socket_unregister_write
        self._client.on_log = self._on_log

        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._connack: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[MqttError] | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._misc_task: asyncio.Task[None] | None = None
        self._reader_fd: int | None = None
        self._writer_fd: int | None = None
        self._connected = False
        # paho turns a socket error (a TLS alert, say) into a bare "connection lost" and only
        # logs the cause; kept here so the lost reason can name it
        self._last_paho_error: str | None = None

    # -- public API ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        """Open the connection and wait for CONNACK.

        Raises :class:`MqttConnectError` naming the reason code when the broker refuses, and
        :class:`MqttError` when it cannot be reached or does not answer in time.
        """
        if self._loop is not None:
            raise MqttError("an MqttSession is single use: make a new one to reconnect")
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._connack = loop.create_future()
        self._lost = loop.create_future()
        s = self.settings
        # DNS, TCP connect and the TLS handshake block (bounded by connect_timeout): a worker
        # thread does them; the socket callbacks it triggers are marshalled back to the loop.
        opening = asyncio.ensure_future(
            asyncio.to_thread(self._client.connect, s.host, s.port, s.keepalive)
        )
        try:
            rc = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(
                lambda _f: self._teardown(MqttConnectionLostError("cancelled"))
            )
            raise
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self._teardown(MqttConnectionLostError(f"{s.where}: cannot connect: {exc}"))
            raise MqttError(f"{s.where}: cannot connect: {exc}") from exc
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._teardown(MqttConnectionLostError(f"{s.where}: {paho.error_string(rc)}"))
            raise MqttError(f"{s.where}: cannot connect: {paho.error_string(rc)}")
        try:
            async with asyncio.timeout(s.connect_timeout):
                await asyncio.shield(self._connack)
        except TimeoutError:
            self._teardown(MqttConnectionLostError(f"{s.where}: no CONNACK"))
            raise MqttError(f"{s.where}: no CONNACK within {s.connect_timeout} s") from None
        except MqttError:
            self._teardown(MqttConnectionLostError(f"{s.where}: refused"))
            raise
        except asyncio.CancelledError:
            self._teardown(MqttConnectionLostError("cancelled"))
            raise

    def publish_nowait(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """Queue a publish; the returned future resolves on PUBACK (QoS 1) or fails on loss."""
        if not self._connected or self._loop is None:
            raise MqttConnectionLostError(f"{self.settings.where}: not connected")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        fut: asyncio.Future[None] = self._loop.create_future()
        # Safe: with the register_write callback set paho never writes inside publish(), so the
        # PUBACK cannot be processed before the future is in the table.
        self._pending[int(info.mid)] = fut
        return fut

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        await self.publish_nowait(topic, payload, qos=qos, retain=retain)

    async def wait_lost(self) -> MqttError:
        """Wait until the connection is gone; return why."""
        if self._lost is None:
            raise MqttError("not connected yet")
        return await asyncio.shield(self._lost)

    async def disconnect(self, timeout: float = 2.0, *, publish_will: bool = False) -> None:
        """Send DISCONNECT and close; idempotent. The broker drops the will, or publishes it
        with ``publish_will`` (MQTT 5 only: reason code 0x04, "Disconnect with Will Message")."""
        if self._lost is None or self._lost.done():
            self._teardown(MqttConnectionLostError("disconnected"))
            return
        if self._connected:
            will = publish_will and self.settings.protocol == "5"
            self._client.disconnect(reasoncode=_WITH_WILL if will else None)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._lost)
        except TimeoutError:
            log.warning(
                "%s: DISCONNECT not flushed within %s s, closing", self.settings.where, timeout
            )
        finally:
            self._teardown(MqttConnectionLostError("disconnected"))

    # -- paho callbacks (always on the loop thread, except socket ones during connect) ------------

    def _on_connect(
        self, _client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any
    ) -> None:
        fut = self._connack
        if reason_code.is_failure:
            reason = str(reason_code)
            code = int(reason_code.value)
            exc = MqttConnectError(
                f"{self.settings.where}: broker refused the connection: {reason} "
                f"(reason code {code:#04x}, client id {self.settings.client_id!r}, "
                f"user {self.settings.username!r})",
                code,
                reason,
            )
            if fut is not None and not fut.done():
                fut.set_exception(exc)
            return
        self._connected = True
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _on_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, reason_code: Any, _props: Any
    ) -> None:
        cause = f" ({self._last_paho_error})" if self._last_paho_error else ""
        self._mark_lost(
            MqttConnectionLostError(
                f"{self.settings.where}: connection closed: {reason_code}{cause}"
            )
        )

    def _on_log(self, _client: Any, _userdata: Any, level: int, message: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            self._last_paho_error = message

    def _on_publish(
        self, _client: Any, _userdata: Any, mid: int, reason_code: Any, _props: Any
    ) -> None:
        fut = self._pending.pop(mid, None)
        if fut is None or fut.done():
            return
        if reason_code.is_failure:
            fut.set_exception(
                MqttPublishError(f"{self.settings.where}: broker refused publish: {reason_code}")
            )
        else:
            fut.set_result(None)

    def _on_socket_open(self, _client: Any, _userdata: Any, sock: Any) -> None:
        fd = sock.fileno()
        self._in_loop(lambda: self._add_reader(fd, sock))

    def _on_socket_close(self, _client: Any, _userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_fds)

    def _on_socket_register_write(self, _client: Any, _userdata: Any, sock: Any) -> None:
        fd = sock.fileno()
        self._in_loop(lambda: self._add_writer(fd))

    def _on_socket_unregister_write(self, _client: Any, _userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_writer)

    # -- plumbing --------------------------------------------------------------------------------

    def _in_loop(self, fn: Callable[[], None]) -> None:
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _add_reader(self, fd: int, sock: Any) -> None:
        assert self._loop is not None
        self._reader_fd = fd
        self._loop.add_reader(fd, self._read, sock)
        if self._misc_task is None:
            self._misc_task = self._loop.create_task(self._misc())

    def _add_writer(self, fd: int) -> None:
        assert self._loop is not None
        if self._reader_fd is None or self._lost is None or self._lost.done():
            return  # the socket is gone already (closed before this was scheduled)
        self._writer_fd = fd
        self._loop.add_writer(fd, self._write)

    def _remove_writer(self) -> None:
        if self._writer_fd is not None and self._loop is not None:
            self._loop.remove_writer(self._writer_fd)
        self._writer_fd = None

    def _remove_fds(self) -> None:
        self._remove_writer()
        if self._reader_fd is not None and self._loop is not None:
            self._loop.remove_reader(self._reader_fd)
        self._reader_fd = None

    def _read(self, sock: Any) -> None:
        try:
            self._client.loop_read()
        except (OSError, ValueError) as exc:
            self._teardown(MqttConnectionLostError(f"{self.settings.where}: read failed: {exc}"))
            return
        # TLS may hold decrypted bytes the kernel no longer signals as readable.
        if isinstance(sock, ssl.SSLSocket) and self._reader_fd is not None and sock.pending():
            assert self._loop is not None
            self._loop.call_soon(self._read, sock)

    def _write(self) -> None:
        try:
            self._client.loop_write()
        except (OSError, ValueError) as exc:
            self._teardown(MqttConnectionLostError(f"{self.settings.where}: write failed: {exc}"))

    async def _misc(self) -> None:
        while self._lost is not None and not self._lost.done():
            await asyncio.sleep(_MISC_INTERVAL_S)
            self._client.loop_misc()

    def _mark_lost(self, exc: MqttError) -> None:
        self._connected = False
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(exc)
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
                # The owner may be tearing down and never look at every future again; mark it
                # retrieved so asyncio does not log "exception was never retrieved" for each.
                fut.exception()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(exc)

    def _teardown(self, exc: MqttError) -> None:
        """Close everything this session holds, whatever state it is in."""
        self._remove_fds()
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self._mark_lost(exc)
        if self._connack is not None and self._connack.done() and not self._connack.cancelled():
            self._connack.exception()  # consumed by connect(); do not log it again at GC
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None
