"""One owner per serial line: every frame on a cellbus line goes through one :class:`CellLine`.

The line is half duplex with one master, so transactions are strictly one at a time behind a
lock, with the inter-frame gap kept between them. The port is a pyserial ``Serial`` opened
non-blocking; its file descriptor is watched with ``loop.add_reader`` so the event loop never
blocks on the tty and several lines run in parallel in one thread.

A transaction ends at the first of: the expected reply (returned), a refusal (raised), a frame
whose CRC failed but whose header is the expected reply's (raised at once: the board will not
send it again), or the response timeout (raised, classified by what did arrive).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass

import serial

from drivers.cellbus import protocol as p
from drivers.cellbus.config import LineSettings
from drivers.cellbus.errors import (
    CellbusCrcError,
    CellbusError,
    CellbusPortError,
    CellbusRefusedError,
    CellbusShortFrameError,
    CellbusTimeoutError,
    CellbusUnexpectedError,
)
from drivers.cellbus.frame import BROADCAST, CrcFailure, Frame, FrameParser, encode

log = logging.getLogger(__name__)


@dataclass
class LineStats:
    """Line-level counts that no single board can be blamed for."""

    transactions: int = 0
    stray_frames: int = 0  # valid frames arriving while no transaction waited
    reopened: int = 0


@dataclass
class _Pending:
    address: int
    command: int
    future: asyncio.Future[bytes]
    crc_failures: int = 0
    unexpected: int = 0


def _expire(future: asyncio.Future[bytes]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class CellLine:
    """The master end of one cellbus line."""

    def __init__(self, settings: LineSettings, *, response_timeout: float, gap: float) -> None:
        self.settings = settings
        self.response_timeout = response_timeout
        self.gap = gap
        self.stats = LineStats()
        self.parser = FrameParser()
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._last_end = 0.0
        self._lost: OSError | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        """Open the port (idempotent); CellbusPortError naming the port and the cause."""
        if self._serial is not None:
            return
        s = self.settings
        try:
            port = serial.Serial(s.port, s.baudrate, timeout=0, write_timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise CellbusPortError(f"line {s.name}: cannot open {s.port}: {exc}") from exc
        self._serial = port
        self._fd = port.fileno()
        os.set_blocking(self._fd, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._on_readable)
        self._lost = None
        self.parser.reset()
        log.info("line %s: opened %s at %d baud", s.name, s.port, s.baudrate)

    def close(self) -> None:
        if self._serial is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
        with contextlib.suppress(OSError, serial.SerialException):
            self._serial.close()
        self._serial = None
        self._fd = -1

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # the adapter is gone: stop watching, fail what waits
            self._port_lost(exc)
            return
        if not data:
            self._port_lost(OSError("end of file on the port"))
            return
        for item in self.parser.feed(data):
            self._route(item)

    def _port_lost(self, exc: OSError) -> None:
        log.warning("line %s: port %s lost: %s", self.name, self.settings.port, exc)
        self._lost = exc
        pending = self._pending
        self.close()
        if pending is not None and not pending.future.done():
            pending.future.set_exception(
                CellbusPortError(f"line {self.name}: port {self.settings.port} lost: {exc}")
            )

    def _route(self, item: Frame | CrcFailure) -> None:
        pending = self._pending
        if pending is None or pending.future.done():
            if isinstance(item, Frame):
                self.stats.stray_frames += 1
            return
        ours = item.address == pending.address and item.command in (
            pending.command | p.REPLY,
            pending.command | p.REFUSAL,
        )
        if isinstance(item, CrcFailure):
            pending.crc_failures += 1
            if ours:
                pending.future.set_exception(
                    CellbusCrcError(f"CRC error in the reply of address {item.address}")
                )
            return
        if not ours:
            pending.unexpected += 1
            return
        if item.command & p.REFUSAL == p.REFUSAL:
            code = item.payload[0] if item.payload else 0
            pending.future.set_exception(CellbusRefusedError(code))
        else:
            pending.future.set_result(item.payload)

    async def _write(self, frame: bytes) -> None:
        view = memoryview(frame)
        deadline = time.monotonic() + self.response_timeout
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CellbusTimeoutError(f"line {self.name}: write blocked") from None
                await asyncio.sleep(0.0005)
                continue
            except OSError as exc:
                self._port_lost(exc)
                raise CellbusPortError(f"line {self.name}: write failed: {exc}") from exc
            view = view[n:]

    async def _quiet_gap(self) -> None:
        wait = self._last_end + self.gap - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    def _ensure_open(self) -> None:
        if self._serial is None:
            if self._lost is not None:
                self.stats.reopened += 1
            self.open()

    async def broadcast(self, command: int, payload: bytes = b"") -> None:
        """Send a frame to every board; nobody answers."""
        async with self._lock:
            self._ensure_open()
            await self._quiet_gap()
            await self._write(encode(BROADCAST, command, payload))
            self._last_end = time.monotonic()

    async def transact(
        self, address: int, command: int, payload: bytes = b"", timeout: float | None = None
    ) -> bytes:
        """Send one request and return the reply's payload, or raise the :class:`CellbusError`."""
        async with self._lock:
            self._ensure_open()
            await self._quiet_gap()
            self.parser.reset()  # anything held now belongs to an earlier, finished transaction
            loop = asyncio.get_running_loop()
            pending = _Pending(address, command, loop.create_future())
            garbage0 = self.parser.garbage_bytes
            self._pending = pending
            self.stats.transactions += 1
            limit = self.response_timeout if timeout is None else timeout
            expiry: asyncio.TimerHandle | None = None
            try:
                await self._write(encode(address, command, payload))
                # A timer on the reply's future, not asyncio.timeout: the same deadline at a
                # third of the CPU, paid on every transaction of every cycle. A reply routed in
                # the same loop pass as the deadline is kept rather than cancelled.
                expiry = loop.call_at(loop.time() + limit, _expire, pending.future)
                return await pending.future
            except TimeoutError:
                raise self._classify(pending, garbage0, limit) from None
            finally:
                if expiry is not None:
                    expiry.cancel()
                self._pending = None
                self._last_end = time.monotonic()

    def _classify(self, pending: _Pending, garbage0: int, limit: float) -> CellbusError:
        where = f"address {pending.address}"
        if pending.unexpected:
            return CellbusUnexpectedError(f"{where}: {pending.unexpected} frame(s), none the reply")
        if pending.crc_failures:
            return CellbusCrcError(f"{where}: CRC error, no valid reply")
        if self.parser.pending or self.parser.garbage_bytes > garbage0:
            return CellbusShortFrameError(f"{where}: incomplete reply within {limit:g} s")
        return CellbusTimeoutError(f"{where}: no reply within {limit:g} s")
