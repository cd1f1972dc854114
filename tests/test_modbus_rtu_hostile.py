"""Modbus RTU against a hostile slave on a real pty: replies with a valid CRC but a junk PDU, the
wrong function, unit or byte count, bit-flipped, truncated, random, silent. No traceback, every
read within its timeout, no value from a corrupt reply, valid replies read."""

from __future__ import annotations

import asyncio
import os
import random
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from drivers.modbus.bus import SerialBus
from drivers.modbus.link import quiet_pymodbus_logging
from drivers.modbus.source import ModbusRtuSource
from gateway.core.model import Quality
from tests.test_modbus_rtu import REGISTERS, _plan, _pty, _settings, _slave, with_crc

UNIT = 1
TIMEOUT = 0.15
KINDS = (
    "valid",
    "junk_pdu",
    "wrong_function",
    "wrong_unit",
    "byte_count",
    "bitflip",
    "truncated",
    "random",
    "silent",
)


@dataclass
class HostileSlave:
    fd: int
    rng: random.Random
    sent: list[str] = field(default_factory=list)
    _buf: bytes = b""

    def on_readable(self) -> None:
        try:
            self._buf += os.read(self.fd, 512)
        except BlockingIOError:
            return
        while len(self._buf) >= 8:
            frame, self._buf = self._buf[:8], self._buf[8:]
            unit, fc, address, count = struct.unpack(">BBHH", frame[:6])
            kind = self.rng.choice(KINDS)
            self.sent.append(kind)
            reply = self._reply(kind, unit, fc, REGISTERS[UNIT][address : address + count])
            if reply:
                os.write(self.fd, reply)

    def _reply(self, kind: str, unit: int, fc: int, regs: list[int]) -> bytes:
        rng = self.rng
        body = struct.pack(f">BBB{len(regs)}H", unit, fc, 2 * len(regs), *regs)
        if kind == "valid":
            return with_crc(body)
        if kind == "junk_pdu":
            return with_crc(bytes([unit, 0x55]) + rng.randbytes(rng.randint(0, 20)))
        if kind == "wrong_function":
            return with_crc(bytes([unit, rng.choice([1, 2, 4])]) + body[2:])
        if kind == "wrong_unit":
            return with_crc(bytes([(unit + rng.randint(1, 246)) % 248]) + body[1:])
        if kind == "byte_count":
            return with_crc(body[:2] + bytes([(body[2] + rng.randint(1, 255)) % 256]) + body[3:])
        if kind == "bitflip":
            out = bytearray(with_crc(body))
            pos = rng.randrange(len(out) * 8)
            out[pos // 8] ^= 1 << (pos % 8)
            return bytes(out)
        if kind == "truncated":
            whole = with_crc(body)
            return whole[: rng.randrange(1, len(whole))]
        if kind == "random":
            return rng.randbytes(rng.randint(1, 40))
        return b""  # silent


async def test_hostile_rtu_slave_campaign() -> None:
    quiet_pymodbus_logging()
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    n = int(os.environ.get("GRIDGATE_FUZZ_RTU", "150"))
    accepted_corrupt = rejected_valid = 0
    slowest = 0.0
    with _pty() as (master, path):
        slave = HostileSlave(master, random.Random(11))
        loop.add_reader(master, slave.on_readable)
        bus = SerialBus(_settings(path))
        source = ModbusRtuSource(_slave(UNIT), bus, backoff_cap=0.001)
        try:
            while len(slave.sent) < n:
                while not source.health.due(time.monotonic()):
                    await asyncio.sleep(0.001)
                before = len(slave.sent)
                t0 = loop.time()
                frame = await source.read(_plan())
                slowest = max(slowest, loop.time() - t0)
                if len(slave.sent) != before + 1:
                    continue
                good = frame.quality == Quality.GOOD
                if slave.sent[-1] == "valid":
                    ok = good.all() and frame.values.tolist() == REGISTERS[UNIT]
                    rejected_valid += not ok
                else:
                    accepted_corrupt += bool(good.any())
                # A reply cut short or garbled may be followed by the rest of nothing: let the
                # line go quiet before the next request, as the bus's own gap does.
                await asyncio.sleep(0.005)
        finally:
            loop.remove_reader(master)
            bus.close()
    print(
        f"\nmodbus rtu fuzz: {len(slave.sent)} replies, tracebacks {len(errors)}, values "
        f"accepted from corrupt replies {accepted_corrupt}, valid rejected {rejected_valid}, "
        f"slowest read {slowest:.3f} s"
    )
    assert errors == []
    assert accepted_corrupt == 0
    assert rejected_valid == 0
    assert slowest < TIMEOUT + 0.5 + 0.25
