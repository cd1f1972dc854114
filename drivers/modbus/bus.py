"""One owner per RS-485 line: every transaction on the line goes through one lock and one client.

Two masters talking at once on a half-duplex line garble both frames, so the slaves of a bus
never get their own clients. The owner also keeps the inter-frame gap (t3.5): a slave may only
recognise the start of a frame after the line has been silent that long.
"""

from __future__ import annotations

import asyncio
import math
import time

from pymodbus.client import AsyncModbusSerialClient

from drivers.modbus.device import SerialBusSettings
from drivers.modbus.link import Block, ModbusLink, ReadRequestLike, TraceConnect, TracePacket


class SerialBus:
    """Serialises the reads of all slaves on one serial line.

    The lock is FIFO, so slaves take turns in the order they asked; a slave that times out holds
    the line for one timeout only (its source stops the rest of its plan), and a backed-off slave
    never asks at all. The port is opened on the first transaction, and reopened after it is lost.
    """

    def __init__(self, settings: SerialBusSettings) -> None:
        self.settings = settings
        self._link = ModbusLink(self._make_client, f"serial port {settings.port}")
        self._lock = asyncio.Lock()
        self._last_end = -math.inf  # monotonic end of the previous transaction

    def _make_client(
        self, trace_packet: TracePacket, trace_connect: TraceConnect
    ) -> AsyncModbusSerialClient:
        s = self.settings
        return AsyncModbusSerialClient(
            s.port,
            baudrate=s.baudrate,
            bytesize=s.bytesize,
            parity=s.parity,
            stopbits=s.stopbits,
            timeout=s.timeout,
            retries=0,
            reconnect_delay=0,  # we reopen on demand; a background reconnect would race us
            name=f"bus {s.name}",
            trace_packet=trace_packet,
            trace_connect=trace_connect,
        )

    async def transact(
        self,
        unit_id: int,
        request: ReadRequestLike,
        timeout: float | None = None,
        retries: int = 0,
    ) -> Block:
        """Read one request from slave ``unit_id`` when the line is ours and quiet long enough."""
        async with self._lock:
            quiet = self._last_end + self.settings.inter_frame_gap - time.monotonic()
            if quiet > 0:
                await asyncio.sleep(quiet)
            try:
                return await self._link.read(
                    unit_id, request, timeout or self.settings.timeout, retries
                )
            finally:
                self._last_end = time.monotonic()

    def close(self) -> None:
        """Release the serial port (the next transaction reopens it)."""
        self._link.close()
