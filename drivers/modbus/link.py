"""One pymodbus async client, turned into reads that either return a block or raise a typed error.

pymodbus reports most failures as ``False``, ``None`` or a log line; a poller needs the cause as
a short phrase for its one health line. So this module watches the traffic (``trace_packet``) to
tell a silent device from one that sent garbage, and keeps the reason a connect failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from drivers.modbus.exceptions import (
    ModbusConnectError,
    ModbusExceptionError,
    ModbusFrameError,
    ModbusReadError,
    ModbusTimeoutError,
)
from drivers.modbus.types import Table

Block = npt.NDArray[np.uint16] | npt.NDArray[np.uint8]
TracePacket = Callable[[bool, bytes], bytes]
TraceConnect = Callable[[bool], None]
ClientFactory = Callable[[TracePacket, TraceConnect], ModbusBaseClient]

# Slack on top of pymodbus's own response timeout, so our guard only fires if pymodbus hangs.
_GUARD_SLACK = 0.5


class ReadRequestLike(Protocol):
    """What a link needs of one planned request (``drivers.modbus.plan.ReadRequest``)."""

    @property
    def table(self) -> Table: ...
    @property
    def address(self) -> int: ...
    @property
    def count(self) -> int: ...


def quiet_pymodbus_logging(level: int = logging.CRITICAL) -> None:
    """Silence pymodbus's own log (call once at daemon start, not at import).

    pymodbus logs every timeout at ERROR with a dump of the last frames, on every poll; our
    :class:`~drivers.modbus.health.Health` already logs one line per change with the cause.
    """
    logging.getLogger("pymodbus").setLevel(level)


def _quiet_unless_configured() -> None:
    """Quiet pymodbus when the first client is built, unless someone set its level already.

    Nothing called :func:`quiet_pymodbus_logging`, so every poll of a device sending junk
    logged pymodbus's warning (and each timeout its error with a frame dump) on top of our
    one line per episode. A level set on purpose (debugging a device) is left alone.
    """
    if logging.getLogger("pymodbus").level == logging.NOTSET:
        quiet_pymodbus_logging()


def describe(request: ReadRequestLike) -> str:
    """``holding 100..109``: the address range a technician looks up in the device manual."""
    last = request.address + request.count - 1
    return f"{request.table.value} {request.address}..{last}"


class ModbusLink:
    """Owns one pymodbus client (built on first use, inside the running loop) and its reads.

    Not safe for concurrent use by itself: a TCP device has one link and reads it in order, a
    serial bus serialises every transaction on its link behind one lock.
    """

    def __init__(self, factory: ClientFactory, peer: str) -> None:
        self._factory = factory
        self._peer = peer
        self._client: ModbusBaseClient | None = None
        self._rx_bytes = 0
        self._connect_error: BaseException | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx_bytes += len(data)
        return data

    def _trace_connect(self, connected: bool) -> None:
        # pymodbus leaves a request in flight waiting for its full timeout when the peer hangs
        # up; fail it now, so a closed connection reads as "lost", not as a silent device.
        client = self._client
        if connected or client is None:
            return
        pending = client.ctx.response_future
        if not pending.done():
            pending.set_exception(ConnectionException("peer closed the connection"))

    def _build(self) -> ModbusBaseClient:
        _quiet_unless_configured()
        client = self._factory(self._trace_packet, self._trace_connect)
        create = client.ctx.call_create

        # pymodbus logs the reason a connect failed and returns False; keep it for our log line.
        async def create_noting_cause() -> Any:
            self._connect_error = None
            try:
                return await create()
            except OSError as exc:
                self._connect_error = exc
                raise

        hook: Callable[[], Coroutine[Any, Any, Any]] = create_noting_cause
        client.ctx.call_create = hook
        client.ctx.callback_data = self._guard_decode(client)  # type: ignore[method-assign]
        return client

    @staticmethod
    def _guard_decode(client: ModbusBaseClient) -> Callable[..., int]:
        """pymodbus raises out of ``data_received`` on a frame it cannot decode (a valid MBAP
        header and a junk PDU): asyncio then logs a traceback and drops the connection, on every
        poll. Fail the request in flight with the cause instead and drop the unusable bytes."""
        decode = client.ctx.callback_data

        def callback_data(data: bytes, addr: tuple[str, int] | None = None) -> int:
            try:
                return decode(data, addr)
            except ModbusException as exc:
                pending = client.ctx.response_future
                if not pending.done():
                    pending.set_exception(ModbusFrameError(f"undecodable reply: {_reason(exc)}"))
                return len(data)

        return callback_data

    async def connect(self) -> ModbusBaseClient:
        """Return a connected client, opening the link if needed; ModbusConnectError if not."""
        if self._client is None:
            self._client = self._build()
        client = self._client
        if client.connected:
            return client
        if not await client.connect():
            raise ModbusConnectError(self._connect_cause())
        return client

    def _connect_cause(self) -> str:
        exc = self._connect_error
        if exc is None:
            return f"cannot connect to {self._peer}: timeout"
        if isinstance(exc, ConnectionRefusedError):
            return f"connection refused by {self._peer}"
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"cannot connect to {self._peer}: {reason}"

    async def read(
        self, unit_id: int, request: ReadRequestLike, timeout: float, retries: int = 0
    ) -> Block:
        """Execute one read; the block (uint16 registers or uint8 bits) or a ModbusReadError.

        ``timeout`` and ``retries`` are per call because the slaves sharing a serial link each
        have their own.
        """
        client = await self.connect()
        client.ctx.comm_params.timeout_connect = timeout
        client.ctx.retries = retries
        self._rx_bytes = 0
        try:
            async with asyncio.timeout(timeout * (retries + 1) + _GUARD_SLACK):
                response = await _call(client, unit_id, request)
        except TimeoutError:
            raise self._silence(timeout) from None
        except ModbusIOException:
            # pymodbus raises this after its retries ran out without a valid reply.
            raise self._silence(timeout) from None
        except ConnectionException as exc:
            raise ModbusConnectError(f"connection to {self._peer} lost") from exc
        except ModbusException as exc:
            raise ModbusFrameError(f"unusable reply: {_reason(exc)}") from exc
        # pymodbus lets a reply with transaction id 0 answer any request: a stray or replayed
        # frame must not be taken for this request's answer.
        if response.transaction_id != client.ctx.request_transaction_id:
            raise ModbusFrameError(
                f"reply to transaction {response.transaction_id}, "
                f"not {client.ctx.request_transaction_id}"
            )
        return _block(request, response)

    def _silence(self, timeout: float) -> ModbusReadError:
        if self._rx_bytes:
            return ModbusFrameError(
                f"short or garbled reply ({self._rx_bytes} bytes, no valid frame)"
            )
        return ModbusTimeoutError(f"timeout, no reply within {timeout:g} s")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


async def _call(client: ModbusBaseClient, unit_id: int, request: ReadRequestLike) -> ModbusPDU:
    address, count = request.address, request.count
    match request.table:
        case Table.COIL:
            return await client.read_coils(address, count=count, device_id=unit_id)
        case Table.DISCRETE:
            return await client.read_discrete_inputs(address, count=count, device_id=unit_id)
        case Table.HOLDING:
            return await client.read_holding_registers(address, count=count, device_id=unit_id)
        case Table.INPUT:
            return await client.read_input_registers(address, count=count, device_id=unit_id)


def _reason(exc: ModbusException) -> str:
    """pymodbus's message without its ``Modbus Error: [Input/Output]`` prefixes."""
    text = str(exc)
    return text.rsplit("] ", 1)[-1].removeprefix("Modbus Error: ").strip() or type(exc).__name__


def _block(request: ReadRequestLike, response: ModbusPDU) -> Block:
    if response.isError():
        if isinstance(response, ExceptionResponse):
            if response.function_code & 0x7F != request.table.function_code:
                raise ModbusFrameError(f"exception reply for function {response.function_code}")
            raise ModbusExceptionError(response.exception_code)
        raise ModbusFrameError(f"error reply {response}")
    if response.function_code != request.table.function_code:
        # A well-formed frame answering another function (input registers for holding, ...)
        # holds someone else's values.
        raise ModbusFrameError(
            f"reply of function {response.function_code} "
            f"to a function {request.table.function_code} request"
        )
    if request.table.is_bit:
        bits = response.bits
        if len(bits) < request.count:
            raise ModbusFrameError(f"{len(bits)} bits for {request.count} asked")
        return np.asarray(bits[: request.count], dtype=np.uint8)
    registers = response.registers
    if len(registers) != request.count:
        raise ModbusFrameError(f"{len(registers)} registers for {request.count} asked")
    return np.asarray(registers, dtype=np.uint16)
