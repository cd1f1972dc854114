"""An OPC UA server (PLC) as a source of :class:`Frame` objects, kept alive across restarts.

One *session* is one asyncua ``Client``: connect, resolve the configured nodes, subscribe (or
poll), pump frames until the connection is lost, then tear the client down completely and build
a new one after a capped, jittered backoff. asyncua's own auto-reconnect is off on purpose:
a fresh client per session means nothing of the old one (subscription objects, handles, tasks)
can pile up, however often the PLC restarts; on a clean stop the subscription is deleted on the
server and on a lost link the server drops it when ``session_timeout`` runs out.

Values are never held over a loss: when the session ends, one BAD frame is emitted, and the
next session starts with every point BAD until the server reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import numpy as np
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeNotif, Subscription
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from drivers.opcua.config import NodeConfig, OpcUaConfig
from drivers.opcua.errors import OpcUaError, SubscriptionUnsupportedError, UntrustedServerError
from drivers.opcua.quality import sample, status_name
from drivers.opcua.security import TrustListValidator, configure
from drivers.opcua.subscribe import subscribe
from drivers.opcua.teardown import teardown
from gateway.core.backoff import Backoff
from gateway.core.model import Frame, PointSpec, Quality

_log = logging.getLogger(__name__)

FrameCallback = Callable[[Frame], Awaitable[None] | None]

_CERT_CODES = {
    StatusCodes.BadCertificateUntrusted,
    StatusCodes.BadCertificateTimeInvalid,
    StatusCodes.BadCertificateInvalid,
    StatusCodes.BadCertificateUriInvalid,
    StatusCodes.BadCertificateRevoked,
    StatusCodes.BadCertificateUseNotAllowed,
}


class _Handler:
    """asyncua subscription handler: writes notifications into the session's arrays."""

    def __init__(self, session: _Session) -> None:
        self._session = session

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        self._session.on_data(data.monitored_item.ClientHandle, data.monitored_item.Value)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        self._session.lost(f"subscription status {status_name(status.Status)}")


class _Session:
    """State of one connection: the latest value and quality per point, and why it ended."""

    def __init__(self, n_points: int) -> None:
        self.values = np.full(n_points, np.nan, dtype=np.float64)
        self.quality = np.full(n_points, Quality.BAD, dtype=np.uint8)
        self.changed = asyncio.Event()
        self.ended = asyncio.Event()
        self.cause = ""
        self.handles: dict[int, int] = {}  # client handle -> point index

    def on_data(self, handle: int, data_value: ua.DataValue) -> None:
        index = self.handles.get(handle)
        if index is None:
            return
        value, quality = sample(data_value)
        self.values[index] = value
        self.quality[index] = quality
        self.changed.set()

    def lost(self, cause: str) -> None:
        if not self.ended.is_set():
            self.cause = cause
            self.ended.set()


class OpcUaSource:
    """Reads the configured nodes of one OPC UA server into frames, forever.

    ``run(on_frame)`` never returns and never raises (except on cancellation): connection,
    security and node problems are logged once per change of cause and retried with backoff.
    ``frames()`` offers the same as an async iterator.
    """

    def __init__(
        self,
        config: OpcUaConfig,
        name: str = "plc",
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        initial_backoff: float = 0.2,
    ) -> None:
        self.config = config
        self.name = name
        self._clock = clock
        self._backoff = Backoff(
            initial_backoff, max(initial_backoff, config.reconnect_max), rng=rng
        )
        self.points: tuple[PointSpec, ...] = config.points
        self.sessions = 0  # sessions that got as far as reading data
        self.mode = "disconnected"  # "subscription", "polling" or "disconnected"
        self.last_error: OpcUaError | None = None
        self._last_logged = ""
        self._bad_sent = False

    # ----------------------------------------------------------------- public API

    async def run(self, on_frame: FrameCallback) -> None:
        while True:
            session = _Session(len(self.config.nodes))
            try:
                await self._session(session, on_frame)
            except OpcUaError as exc:
                self._failed(exc)
            self.mode = "disconnected"
            if not self._bad_sent:
                # Once per outage: the daemon must see the values go, not keep the last ones.
                self._bad_sent = True
                await _deliver(on_frame, Frame.bad(self.name, self._clock(), len(self.points)))
            await asyncio.sleep(self._backoff.next())

    async def frames(self, maxsize: int = 100) -> AsyncIterator[Frame]:
        """Frames as an async iterator; the oldest is dropped if the consumer falls behind."""
        queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize)

        def put(frame: Frame) -> None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(frame)

        task = asyncio.create_task(self.run(put), name=f"opcua-{self.name}")
        try:
            while True:
                yield await queue.get()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def read_once(self) -> Frame:
        """Connect, read every node once, disconnect; raises :class:`OpcUaError` on failure."""
        client, validator = await self._connect()
        try:
            nodes = await self._resolve(client)
            session = _Session(len(nodes))
            await self._poll(client, nodes, session)
            return self._frame(session)
        except (OSError, TimeoutError, UaError, ConnectionError) as exc:
            raise self._error(exc, validator) from exc
        finally:
            await teardown(client, None)

    # ----------------------------------------------------------------- one session

    async def _session(self, session: _Session, on_frame: FrameCallback) -> None:
        client: Client | None = None
        subscription: Subscription | None = None
        validator: TrustListValidator | None = None
        try:
            client, validator = await self._connect()
            client.connection_lost_callback = _on_lost(session)
            nodes = await self._resolve(client)
            if self.config.acquisition != "poll":
                try:
                    subscription = await self._subscribe(client, nodes, session)
                except SubscriptionUnsupportedError as exc:
                    if self.config.acquisition == "subscribe":
                        raise
                    _log.warning("opcua %s: %s; falling back to polling", self.name, exc)
            self.sessions += 1
            self._backoff.reset()
            self.mode = "subscription" if subscription is not None else "polling"
            self._recovered()
            self._bad_sent = False
            if subscription is not None:
                await self._pump(session, on_frame)
            else:
                await self._poll_loop(client, nodes, session, on_frame)
            raise OpcUaError(f"connection lost: {session.cause}")
        except (OSError, TimeoutError, UaError, ConnectionError) as exc:
            raise self._error(exc, validator) from exc
        finally:
            if client is not None:
                await teardown(client, subscription if not session.ended.is_set() else None)

    async def _connect(self) -> tuple[Client, TrustListValidator | None]:
        cfg = self.config
        client = Client(cfg.endpoint, timeout=cfg.timeout, watchdog_intervall=1.0)
        client.session_timeout = int(cfg.session_timeout * 1000)
        client.name = client.description = f"gridgate {self.name}"
        validator: TrustListValidator | None = None
        try:
            validator = await configure(client, cfg.security)
            await asyncio.wait_for(client.connect(), cfg.timeout * 2)
        except (OSError, TimeoutError, UaError, ConnectionError, ValueError) as exc:
            await teardown(client, None)
            raise self._error(exc, validator) from exc
        return client, validator

    async def _resolve(self, client: Client) -> list[Node | None]:
        """Node objects per configured point; None (point stays BAD) where the server has none."""
        nodes: list[Node | None] = []
        for node_cfg in self.config.nodes:
            if node_cfg.node_id is not None:
                nodes.append(client.get_node(node_cfg.node_id))
                continue
            try:
                nodes.append(await client.nodes.root.get_child(list(node_cfg.browse_path or ())))
            except UaStatusCodeError as exc:
                self._node_problem(node_cfg, status_name(exc.code))
                nodes.append(None)
        return nodes

    async def _subscribe(
        self, client: Client, nodes: list[Node | None], session: _Session
    ) -> Subscription:
        return await subscribe(
            client, nodes, self.config, _Handler(session), session.handles, self._node_problem
        )

    async def _pump(self, session: _Session, on_frame: FrameCallback) -> None:
        """Emit a frame after each batch of notifications until the session ends."""
        ended = asyncio.ensure_future(session.ended.wait())
        try:
            while not session.ended.is_set():
                changed = asyncio.ensure_future(session.changed.wait())
                await asyncio.wait({changed, ended}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                if session.changed.is_set() and not session.ended.is_set():
                    session.changed.clear()
                    await _deliver(on_frame, self._frame(session))
        finally:
            ended.cancel()

    async def _poll(self, client: Client, nodes: list[Node | None], session: _Session) -> None:
        present = [(i, n) for i, n in enumerate(nodes) if n is not None]
        if not present:
            return
        values = await client.read_attributes([n for _, n in present])
        for (index, _), data_value in zip(present, values, strict=True):
            value, quality = sample(data_value)
            session.values[index] = value
            session.quality[index] = quality

    async def _poll_loop(
        self,
        client: Client,
        nodes: list[Node | None],
        session: _Session,
        on_frame: FrameCallback,
    ) -> None:
        period = self.config.sampling_interval
        next_at = time.monotonic()
        while not session.ended.is_set():
            await self._poll(client, nodes, session)
            await _deliver(on_frame, self._frame(session))
            next_at += period
            # Skip missed ticks instead of bursting after a stall.
            next_at = max(next_at, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.ended.wait(), next_at - time.monotonic())

    # ----------------------------------------------------------------- helpers

    def _frame(self, session: _Session) -> Frame:
        return Frame(self.name, self._clock(), session.values.copy(), session.quality.copy())

    def _error(self, exc: BaseException, validator: TrustListValidator | None) -> OpcUaError:
        if isinstance(exc, OpcUaError):
            return exc
        where = self.config.endpoint
        if isinstance(exc, UaStatusCodeError) and exc.code in _CERT_CODES:
            reason = validator.refusal if validator and validator.refusal else status_name(exc.code)
            return UntrustedServerError(f"{where}: refused: {reason}")
        if isinstance(exc, UaStatusCodeError):
            return OpcUaError(f"{where}: {status_name(exc.code)}")
        if isinstance(exc, TimeoutError):
            return OpcUaError(f"{where}: no answer within {self.config.timeout} s")
        return OpcUaError(f"{where}: {type(exc).__name__}: {exc}")

    def _failed(self, exc: OpcUaError) -> None:
        self.last_error = exc
        text = str(exc)
        if text != self._last_logged:
            self._last_logged = text
            _log.error("opcua %s: %s; retrying with backoff", self.name, text)

    def _recovered(self) -> None:
        sec = self.config.security
        _log.info(
            "opcua %s: connected to %s (%s/%s), %d nodes by %s",
            self.name,
            self.config.endpoint,
            sec.policy,
            sec.mode,
            len(self.config.nodes),
            self.mode,
        )
        self._last_logged = ""
        self.last_error = None

    def _node_problem(self, node: NodeConfig, reason: str) -> None:
        _log.warning(
            "opcua %s: node %s (%s) unusable: %s", self.name, node.name, node.where, reason
        )


def _on_lost(session: _Session) -> Callable[[Exception], Coroutine[Any, Any, None]]:
    async def lost(exc: Exception) -> None:
        session.lost(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    return lost


async def _deliver(on_frame: FrameCallback, frame: Frame) -> None:
    result = on_frame(frame)
    if inspect.isawaitable(result):
        await result


__all__ = ["FrameCallback", "OpcUaSource"]
