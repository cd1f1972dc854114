"""``gridgate scan modbus``: find a meter's unit id, see its registers, read its SunSpec models.

Three jobs, one per option: ``--units`` sweeps unit ids with a short timeout (a few TCP
connections at once, a serial line one id at a time); ``--probe`` prints a register range in
every type and word order (:mod:`drivers.modbus.scan_probe`); ``--sunspec`` walks the SunSpec
model list and can write a register map (:mod:`drivers.modbus.scan_sunspec`). Every read goes
through the driver's own :class:`~drivers.modbus.link.ModbusLink`, so a device that sends junk
gives the same one-phrase cause the grid daemon logs, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pymodbus.client import AsyncModbusTcpClient

from drivers.modbus.bus import SerialBus
from drivers.modbus.device import (
    SerialBusSettings,
    default_inter_frame_gap,
    parse_bus,
    parse_device,
)
from drivers.modbus.exceptions import (
    ModbusConnectError,
    ModbusExceptionError,
    ModbusReadError,
    ModbusTimeoutError,
)
from drivers.modbus.link import ModbusLink, TraceConnect, TracePacket
from drivers.modbus.scan_cli import READ_TIMEOUT, SWEEP_TIMEOUT
from drivers.modbus.scan_probe import probe_lines
from drivers.modbus.scan_sunspec import discover
from drivers.modbus.types import MAX_ADDRESS, MAX_READ_REGISTERS, Table
from gateway.config.issues import IssueSink

EX_OK, EX_FAIL, EX_USAGE, EX_UNAVAILABLE, EX_INTERRUPTED = 0, 1, 64, 69, 130
MAX_CONCURRENCY = 16
# Exceptions a TCP/RTU gateway sends for a unit id behind it that does not answer: not a device.
GATEWAY_CODES = frozenset({0x0A, 0x0B})
_OPTION = {"baudrate": "--baud", "unit_id": "UNIT", "bus": "--serial"}
_IDS = re.compile(r"^\s*(\d{1,3})\s*(?:-\s*(\d{1,3})\s*)?$")


class UsageError(ValueError):
    """A command-line value the scan cannot use; the message names the option."""


@dataclass(frozen=True)
class Request:
    """One read (what :class:`ModbusLink` needs of a planned request)."""

    table: Table
    address: int
    count: int


Registers = npt.NDArray[np.uint16]


class Target:
    """Where the scan reads: a few TCP links to one host, or one serial line."""

    def __init__(self, args: argparse.Namespace, timeout: float) -> None:
        self.timeout = timeout
        self.peer = f"{args.host}:{args.port}" if args.host else f"serial port {args.serial}"
        self._bus: SerialBus | None = None
        self._links: list[ModbusLink] = []
        self._free: asyncio.Queue[ModbusLink] = asyncio.Queue()
        if args.serial:
            self._bus = SerialBus(_bus_settings(args, timeout))
            self.concurrency = 1
            return
        self.concurrency = args.concurrency if args.units else 1
        for _ in range(self.concurrency):
            link = ModbusLink(_tcp_factory(args.host, args.port, timeout), self.peer)
            self._links.append(link)
            self._free.put_nowait(link)

    async def read(self, unit: int, table: Table, address: int, count: int) -> Registers:
        """``count`` registers from ``address``; a ModbusReadError with its cause if not."""
        request = Request(table, address, count)
        if self._bus is not None:
            block = await self._bus.transact(unit, request, self.timeout)
        else:
            link = await self._free.get()
            try:
                block = await link.read(unit, request, self.timeout)
            finally:
                self._free.put_nowait(link)
        return np.asarray(block, dtype=np.uint16)

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
        for link in self._links:
            link.close()


def _tcp_factory(
    host: str, port: int, timeout: float
) -> Callable[[TracePacket, TraceConnect], AsyncModbusTcpClient]:
    def make(trace_packet: TracePacket, trace_connect: TraceConnect) -> AsyncModbusTcpClient:
        return AsyncModbusTcpClient(
            host,
            port=port,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
            name="scan",
            trace_packet=trace_packet,
            trace_connect=trace_connect,
        )

    return make


def _bus_settings(args: argparse.Namespace, timeout: float) -> SerialBusSettings:
    gap = default_inter_frame_gap(args.baud, args.bytesize, args.parity, args.stopbits)
    return SerialBusSettings(
        "scan", args.serial, args.baud, args.parity, args.stopbits, args.bytesize, gap, timeout
    )


def parse_ids(text: str) -> list[int]:
    """``1-247`` or ``1,3,10-20`` -> the ids in order, each once; UsageError if malformed."""
    ids: list[int] = []
    for part in text.split(","):
        m = _IDS.match(part)
        if m is None:
            raise UsageError(f"--units: {part.strip()!r} is not an id or a range like 1-247")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if not 1 <= lo <= hi <= 247:
            raise UsageError(f"--units: {part.strip()} is not within 1-247 (low to high)")
        ids.extend(i for i in range(lo, hi + 1) if i not in ids)
    return ids


def _check_args(args: argparse.Namespace) -> float:
    """Validate every option before the first byte goes out; the timeout to use."""
    timeout = args.timeout
    if timeout is None:
        timeout = SWEEP_TIMEOUT if args.units else READ_TIMEOUT
    sink = IssueSink("scan modbus")
    if args.serial:
        table = {
            "port": args.serial,
            "baudrate": args.baud,
            "parity": args.parity,
            "stopbits": args.stopbits,
            "bytesize": args.bytesize,
            "timeout": timeout,
        }
        parse_bus("scan", table, sink, "scan")
    unit = args.probe if args.probe is not None else args.sunspec
    device: dict[str, object] = {"timeout": timeout, "unit_id": 1 if unit is None else unit}
    if args.serial:
        device.update(transport="rtu", bus="scan")
    else:
        device.update(transport="tcp", host=args.host, port=args.port)
    parse_device("scan", device, sink, "scan")
    if sink.issues:
        issue = sink.issues[0]
        key = issue.path.rsplit(".", 1)[-1]
        raise UsageError(f"{_OPTION.get(key, '--' + key)}: {issue.reason}")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise UsageError(f"--concurrency: must be 1 to {MAX_CONCURRENCY}")
    if not 0 <= args.start <= MAX_ADDRESS:
        raise UsageError(f"--start: must be 0 to {MAX_ADDRESS}")
    if not 1 <= args.count <= MAX_READ_REGISTERS:
        raise UsageError(f"--count: must be 1 to {MAX_READ_REGISTERS} (one read request)")
    if args.start + args.count > MAX_ADDRESS + 1:
        raise UsageError(f"--count: {args.count} registers from {args.start} pass {MAX_ADDRESS}")
    if args.write_map is not None and args.sunspec is None:
        raise UsageError("--write-map: only with --sunspec")
    return float(timeout)


def run(args: argparse.Namespace) -> int:
    """The scan as ``gridgate scan modbus`` runs it; the exit status."""
    try:
        timeout = _check_args(args)
        ids = parse_ids(args.units) if args.units else []
    except UsageError as exc:
        print(f"scan modbus: {exc}", file=sys.stderr)
        return EX_USAGE
    table = Table.INPUT if args.input else Table.HOLDING

    async def main(target: Target) -> int:
        if args.units:
            return await sweep(target, ids, table, args.start)
        if args.probe is not None:
            return await probe(target, args.probe, table, args.start, args.count)
        code: int = await discover(target, args.sunspec, args.write_map, args)
        return code

    try:
        return asyncio.run(_with_target(args, timeout, main))
    except KeyboardInterrupt:
        print("scan modbus: interrupted", file=sys.stderr)
        return EX_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): not the scan's failure, and no traceback for it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_FAIL


async def _with_target(
    args: argparse.Namespace, timeout: float, job: Callable[[Target], Awaitable[int]]
) -> int:
    target = Target(args, timeout)
    try:
        return await job(target)
    except ModbusConnectError as exc:
        print(f"scan modbus: {exc.cause}", file=sys.stderr)
        return EX_UNAVAILABLE
    finally:
        target.close()


async def sweep(target: Target, ids: list[int], table: Table, address: int) -> int:
    """Read one register of every id; print the ids that answered. ModbusConnectError aborts."""
    print(
        f"sweeping {len(ids)} unit id(s) on {target.peer}: {table.value} register {address}, "
        f"timeout {target.timeout:g} s, {min(target.concurrency, len(ids))} at a time",
        flush=True,
    )
    results: dict[int, str] = {}
    garbled: list[int] = []

    async def one(unit: int) -> None:
        try:
            regs = await target.read(unit, table, address, 1)
            results[unit] = f"answered: {address} = {int(regs[0])} (0x{int(regs[0]):04X})"
        except ModbusExceptionError as exc:
            if exc.code not in GATEWAY_CODES:
                results[unit] = f"answered with exception {exc.cause} (a device is there)"
        except ModbusConnectError:
            raise
        except ModbusTimeoutError:
            pass  # nothing at this id
        except ModbusReadError as exc:
            garbled.append(unit)
            results[unit] = f"sent something unusable: {exc.cause}"

    queue = list(ids)
    lost: list[ModbusConnectError] = []

    async def worker() -> None:
        while queue and not lost:
            try:
                await one(queue.pop(0))
            except ModbusConnectError as exc:
                lost.append(exc)

    await asyncio.gather(*(worker() for _ in range(min(target.concurrency, len(ids)))))
    if lost:
        raise lost[0]
    for unit in sorted(results):
        print(f"unit {unit:3d}: {results[unit]}")
    found = sorted(set(results) - set(garbled))
    print(f"found {len(found)} unit id(s): {', '.join(map(str, found)) or 'none'}")
    if garbled:
        print(f"unusable replies at {', '.join(map(str, sorted(garbled)))}: check the baud rate "
              "and parity, or two devices sharing one id")  # fmt: skip
    return EX_OK if found else EX_FAIL


async def probe(target: Target, unit: int, table: Table, start: int, count: int) -> int:
    """Print ``count`` registers from ``start`` in every type and order."""
    try:
        regs = await target.read(unit, table, start, count)
    except ModbusConnectError:
        raise
    except ModbusReadError as exc:
        last = start + count - 1
        print(f"scan modbus: unit {unit}, {table.value} {start}..{last}: {exc.cause}",
              file=sys.stderr)  # fmt: skip
        return EX_FAIL
    print(f"unit {unit}, {table.value} registers {start}..{start + count - 1} on {target.peer}")
    for line in probe_lines(start, [int(r) for r in regs]):
        print(line)
    return EX_OK
