"""Modbus TCP devices of the footprint benchmark: N meters x 2*P holding registers (P float32).

One process, run apart from the daemons under test so that its CPU is not theirs. The same meters
are served on two ports ("gridgate" and "ref"), unit ids 1..N on each, with the same values, so the
daemon and the reference loop poll identical devices while their requests are counted apart.
Every second each point moves (a slow sine per point plus a small wobble), so summaries and
report-by-exception see real changes. Values are IEEE 754 float32, high word first (ABCD).

    python bench/footprint_devices.py --devices 10 --points 50 --stats FILE

prints ``listening LABEL HOST:PORT`` per port once ready; every second (and at exit) it writes
``{"LABEL": {"UNIT": requests, ...}, ...}`` to FILE (atomically). Exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import time
from functools import partial
from pathlib import Path

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

LABELS = ("gridgate", "ref")
_HOLDING_FC = 3


class Meters:
    """The register images of every meter, refreshed once a second, and request counters."""

    def __init__(self, devices: int, points: int) -> None:
        self.devices = devices
        self.points = points
        self.regs = np.zeros((devices, 2 * points), dtype=np.uint16)
        self.requests = {label: dict.fromkeys(range(1, devices + 1), 0) for label in LABELS}
        self._phase = np.linspace(0.0, 2 * math.pi, points, endpoint=False)
        self.update(time.time())

    def update(self, t: float) -> None:
        unit = np.arange(self.devices, dtype=np.float64)[:, None]
        values = (
            230.0
            + 5.0 * np.sin(t / 60.0 + self._phase[None, :] + unit)
            + 0.2 * np.sin(t * 1.7 + unit)
        )
        # Big-endian float32 seen as big-endian words gives the high word first (ABCD).
        words = values.astype(">f4").view(">u2").astype(np.uint16)
        self.regs[:, :] = words

    async def action(
        self,
        label: str,
        unit: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Runs before pymodbus answers: count the request, copy in the current registers."""
        self.requests[label][unit] += 1
        if function_code != _HOLDING_FC or set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        lo = address - start_address
        registers[lo : lo + count] = self.regs[unit - 1, address : address + count].tolist()
        return None

    def devices_for(self, label: str) -> list[SimDevice]:
        n = 2 * self.points
        bits = [SimData(0, values=False, datatype=DataType.BITS, readonly=True)]
        return [
            SimDevice(
                id=unit,
                simdata=(
                    bits,
                    list(bits),
                    [SimData(0, count=n, values=0, datatype=DataType.REGISTERS)],
                    [SimData(0, datatype=DataType.INVALID)],
                ),
                action=partial(self.action, label, unit),
            )
            for unit in range(1, self.devices + 1)
        ]


def _write_stats(path: Path, meters: Meters) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meters.requests))
    os.replace(tmp, path)


async def _main(args: argparse.Namespace) -> None:
    meters = Meters(args.devices, args.points)
    servers = []
    for label in LABELS:
        server = ModbusTcpServer(meters.devices_for(label), address=(args.host, 0))
        await server.serve_forever(background=True)
        port = int(server.transport.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        print(f"listening {label} {args.host}:{port}", flush=True)
        servers.append(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            meters.update(time.time())
            _write_stats(args.stats, meters)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        _write_stats(args.stats, meters)
        for server in servers:
            await server.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--points", type=int, default=50, help="float32 points (2 registers each)")
    p.add_argument("--stats", type=Path, required=True, help="request counts are written here")
    asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    main()
