"""Modbus devices as frame sources: one read of a compiled plan gives one Frame, never an exception.

A failed request leaves its block ``None``, so exactly the points it carries come out BAD; a
value is never held over from an earlier poll and passed off as good. A device that does not
answer at all is backed off (see :class:`~drivers.modbus.health.Health`); while it is, a read
returns a BAD frame without touching the wire, so a dead meter costs the others nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from pymodbus.client import AsyncModbusTcpClient

from drivers.modbus.bus import SerialBus
from drivers.modbus.device import DEFAULT_TIMEOUT, DeviceConnection
from drivers.modbus.exceptions import ModbusReadError
from drivers.modbus.health import DEFAULT_BACKOFF_CAP, Health, ValueChecks
from drivers.modbus.link import (
    Block,
    ModbusLink,
    ReadRequestLike,
    TraceConnect,
    TracePacket,
    describe,
)
from gateway.core.model import FloatArray, Frame, PointSpec, QualityArray

_log = logging.getLogger(__name__)

FrameCallback = Callable[[Frame], Awaitable[None] | None]

# The start of each device's poll loop is spread over at most this much of its interval (and
# at most _MAX_STAGGER s), so devices configured together do not all hit the network at once.
_STAGGER_SHARE = 0.25
_MAX_STAGGER = 0.5


class ReadPlanLike(Protocol):
    """What a source needs of a compiled plan (``drivers.modbus.plan.ReadPlan``)."""

    @property
    def requests(self) -> Sequence[ReadRequestLike]: ...
    @property
    def points(self) -> Sequence[PointSpec]: ...
    def decode_checked(
        self, blocks: Sequence[Block | None]
    ) -> tuple[FloatArray, QualityArray, Mapping[str, str], Mapping[str, str]]: ...


class ModbusSource(ABC):
    """One Modbus device: reads plans into frames and keeps its :class:`Health`."""

    def __init__(
        self,
        connection: DeviceConnection,
        *,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        rng: random.Random | None = None,
    ) -> None:
        self.connection = connection
        self.name = connection.name
        self.health = Health(
            connection.name, connection.poll_interval, backoff_cap=backoff_cap, rng=rng
        )
        self.values = ValueChecks(connection.name)

    @abstractmethod
    async def _transact(self, request: ReadRequestLike) -> Block:
        """Execute one request on the wire; a block or a ModbusReadError."""

    @abstractmethod
    def close(self) -> None:
        """Drop the connection; the next read opens it again."""

    async def read_decoded(self, plan: ReadPlanLike) -> tuple[Frame, Mapping[str, str]]:
        """Read every request of ``plan`` and decode: the frame and the string points."""
        started = time.monotonic()
        ts = time.time()
        if not self.health.due(started):
            return Frame.bad(self.name, ts, len(plan.points)), {}
        blocks: list[Block | None] = []
        failure: tuple[ReadRequestLike, ModbusReadError] | None = None
        answered = False
        for request in plan.requests:
            if failure is not None and not failure[1].answered:
                # The device is silent or the link is gone: the rest would only add timeouts.
                blocks.append(None)
                continue
            try:
                blocks.append(await self._transact(request))
                answered = True
            except ModbusReadError as exc:
                blocks.append(None)
                answered = answered or exc.answered
                if failure is None or failure[1].answered:
                    failure = (request, exc)
        values, quality, strings, rejected = plan.decode_checked(blocks)
        if failure is None:
            # The device answered: a NaN or implausible value is a BAD value, not a lost device.
            self.health.record_success(ts)
            self.values.record(rejected)
        else:
            failed, error = failure
            where = f"{describe(failed)} (unit {self.connection.unit_id})"
            self.health.record_failure(where, error.cause, started, unreachable=not answered)
        return Frame(self.name, ts, values, quality), strings

    async def read(self, plan: ReadPlanLike) -> Frame:
        """Read and decode ``plan``; failed requests' points are BAD, never a stale value."""
        frame, _strings = await self.read_decoded(plan)
        return frame


class ModbusTcpSource(ModbusSource):
    """A Modbus TCP device (or a TCP gateway slave, by unit id), with its own connection."""

    def __init__(
        self,
        connection: DeviceConnection,
        *,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        rng: random.Random | None = None,
    ) -> None:
        if connection.transport != "tcp" or not connection.host:
            raise ValueError(f"device {connection.name}: not a tcp device with a host")
        super().__init__(connection, backoff_cap=backoff_cap, rng=rng)
        self._timeout = connection.timeout or DEFAULT_TIMEOUT
        self._link = ModbusLink(self._make_client, f"{connection.host}:{connection.port}")

    def _make_client(
        self, trace_packet: TracePacket, trace_connect: TraceConnect
    ) -> AsyncModbusTcpClient:
        c = self.connection
        assert c.host is not None  # checked in __init__
        return AsyncModbusTcpClient(
            c.host,
            port=c.port,
            timeout=self._timeout,
            retries=c.retries,
            reconnect_delay=0,  # we reconnect on the next poll; a background task would race us
            name=f"device {c.name}",
            trace_packet=trace_packet,
            trace_connect=trace_connect,
        )

    async def _transact(self, request: ReadRequestLike) -> Block:
        c = self.connection
        return await self._link.read(c.unit_id, request, self._timeout, c.retries)

    def close(self) -> None:
        self._link.close()


class ModbusRtuSource(ModbusSource):
    """A slave on a serial bus; every transaction goes through the bus's single owner."""

    def __init__(
        self,
        connection: DeviceConnection,
        bus: SerialBus,
        *,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        rng: random.Random | None = None,
    ) -> None:
        if connection.transport != "rtu":
            raise ValueError(f"device {connection.name}: not an rtu device")
        super().__init__(connection, backoff_cap=backoff_cap, rng=rng)
        self.bus = bus

    async def _transact(self, request: ReadRequestLike) -> Block:
        c = self.connection
        return await self.bus.transact(c.unit_id, request, c.timeout, c.retries)

    def close(self) -> None:
        """The bus is shared; its owner closes it."""


def start_stagger(name: str, interval: float) -> float:
    """A per-device start offset, stable across restarts (derived from the name, not random)."""
    share = zlib.crc32(name.encode()) / 2**32
    return share * min(interval * _STAGGER_SHARE, _MAX_STAGGER)


async def poll_forever(
    device: ModbusSource,
    plan: ReadPlanLike,
    interval: float,
    on_frame: FrameCallback,
    *,
    stagger: float | None = None,
) -> None:
    """Read ``plan`` every ``interval`` s on a monotonic grid and hand each frame to ``on_frame``.

    Ticks sit at ``start + k * interval``, so the schedule never drifts; a read (or callback)
    that overruns skips the ticks it missed instead of firing them in a burst. Nothing raises
    out of here but cancellation: an unexpected error is logged once and gives a BAD frame.
    """
    if not interval > 0:
        raise ValueError(f"poll interval must be positive, got {interval}")
    loop = asyncio.get_running_loop()
    start = loop.time() + (start_stagger(device.name, interval) if stagger is None else stagger)
    tick = 0
    read_broken = False
    callback_broken = False
    while True:
        await asyncio.sleep(max(0.0, start + tick * interval - loop.time()))
        try:
            frame = await device.read(plan)
            if read_broken:
                _log.info("modbus device %s: reads work again", device.name)
            read_broken = False
        except Exception:  # a bug in decode must not stop the poll loop; cancel still ends it
            if not read_broken:
                _log.exception("modbus device %s: read failed unexpectedly", device.name)
            read_broken = True
            frame = Frame.bad(device.name, time.time(), len(plan.points))
        try:
            result = on_frame(frame)
            if inspect.isawaitable(result):
                await result
            if callback_broken:
                _log.info("modbus device %s: frame consumer works again", device.name)
            callback_broken = False
        except Exception:  # the consumer's bug is logged, the schedule goes on
            if not callback_broken:
                _log.exception("modbus device %s: frame consumer failed", device.name)
            callback_broken = True
        next_tick = math.floor((loop.time() - start) / interval) + 1
        if next_tick > tick + 1:
            _log.debug(
                "modbus device %s: poll overran, skipping %d ticks",
                device.name,
                next_tick - tick - 1,
            )
        tick = max(tick + 1, next_tick)
