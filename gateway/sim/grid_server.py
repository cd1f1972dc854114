"""The simulated feeder's meters behind one Modbus TCP gateway.

One TCP port serves every meter, one unit id each, the way RS-485 meters in a cable cabinet sit
behind a Modbus TCP/RTU gateway; a config points each meter at host/port/unit_id. Register maps
come from the device profiles (default ``eastron_sdm630``), values from a
model (:class:`~gateway.sim.feeder.FeederModel`, the small street, or
:class:`~gateway.sim.lv_feeder.LvFeederModel`, the IEEE EU LV feeder from a full load flow: any
:class:`MeterModel`) encoded with the driver's own encoder. Profile points the
model does not compute (and gaps between points) read 0; coil and discrete points are not served.

Simulated time is ``model.start + (wall - wall_at_start) * speed``, so ``speed=60`` shows a day in
24 minutes; registers are refreshed every ``interval`` wall seconds.

Faults, per meter:

- ``set_offline(meter, True)``: by default the gateway answers exception 0x0B GATEWAY TARGET
  DEVICE FAILED TO RESPOND (after ``offline_delay_s``, its RTU timeout), which is what a real
  TCP/RTU gateway does when a meter behind it is dead or unplugged. With
  ``offline_reply=OfflineReply.SILENT`` the request is dropped instead and the client times out,
  as with a meter that is itself on TCP and hangs.
- ``set_exception(meter, code)``: every read of that unit is answered with exception ``code``.

Unit ids no meter has get 0x0A GATEWAY PATH UNAVAILABLE, as from a gateway with no route there.
Writes are refused (ILLEGAL DATA ADDRESS): the served registers are read-only.

``python -m gateway.sim.grid_server --port P --seed S`` runs it standalone (prints
``listening on HOST:PORT`` once ready, then one ``meter NAME unit N`` line per meter; exits 0 on
SIGTERM/SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus.codec import encode_point
from drivers.modbus.regmap import load_profile
from drivers.modbus.types import RegisterPoint, Table
from gateway.config.issues import IssueSink, join
from gateway.sim.feeder import FeederModel

_LOG = logging.getLogger(__name__)

DEFAULT_PROFILE = "eastron_sdm630"
_REGISTER_TABLES = (Table.HOLDING, Table.INPUT)
_FUNCTION_TABLES = {3: Table.HOLDING, 4: Table.INPUT}
_CATCH_ALL_UNIT = 0  # pymodbus answers unknown unit ids with device 0


class MeterModel(Protocol):
    """What the simulator needs of a feeder model."""

    @property
    def start(self) -> float: ...

    @property
    def meter_names(self) -> tuple[str, ...]: ...

    def step(self, t: float) -> dict[str, dict[str, float]]:
        """Every meter's readings (point name -> value) at epoch ``t``."""
        ...


class OfflineReply(enum.Enum):
    """How an offline meter shows on the wire."""

    GATEWAY = "gateway"  # exception 0x0B from the gateway in front of the meter
    SILENT = "silent"  # no answer at all; the client's request times out


@dataclass(frozen=True)
class SimMeter:
    """One served meter: the model's meter ``name`` at ``unit_id`` with a register map."""

    name: str
    unit_id: int
    points: tuple[RegisterPoint, ...]


def load_meter(
    name: str,
    unit_id: int,
    profile: str = DEFAULT_PROFILE,
    search_dirs: Sequence[Path] = (),
) -> SimMeter:
    """A meter with the register map of a device profile; raises ConfigError if it is unusable."""
    sink = IssueSink("grid simulator")
    if not 1 <= unit_id <= 247:
        sink.error(join(name, "unit_id"), f"must be 1..247, got {unit_id}")
    points = load_profile(profile, sink, join(name, "profile"), search_dirs)
    sink.raise_if_any()
    return SimMeter(name, unit_id, tuple(points))


def default_meters(
    model: MeterModel, profile: str = DEFAULT_PROFILE, search_dirs: Sequence[Path] = ()
) -> list[SimMeter]:
    """Every meter of the model, unit ids 1, 2, ... from the head down the feeder."""
    return [
        load_meter(name, unit, profile, search_dirs)
        for unit, name in enumerate(model.meter_names, start=1)
    ]


class _Image:
    """The register image of one table of one meter: ``regs[i]`` is address ``start + i``."""

    def __init__(self, points: Sequence[RegisterPoint]) -> None:
        self.points = tuple(points)
        self.start = min(p.address for p in points)
        self.regs = [0] * (max(p.end for p in points) - self.start)


@dataclass
class _MeterState:
    meter: SimMeter
    images: dict[Table, _Image]
    offline: bool = False
    exception: ExcCodes | None = None
    failed_points: frozenset[str] = frozenset()


class GridSimulator:
    """Serves a feeder model's meters over Modbus TCP; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        meters: Sequence[SimMeter],
        model: MeterModel,
        *,
        speed: float = 1.0,
        interval: float = 1.0,
        offline_reply: OfflineReply = OfflineReply.GATEWAY,
        offline_delay_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        units = [m.unit_id for m in meters]
        if len(set(units)) != len(units):
            raise ValueError(f"unit ids must be unique, got {units}")
        unknown = {m.name for m in meters} - set(model.meter_names)
        if unknown:
            raise ValueError(f"the model has no meter {sorted(unknown)}")
        if speed < 0 or interval <= 0:
            raise ValueError("speed must be >= 0 and interval > 0")
        self.host = host
        self._port = port
        self.model = model
        self.speed = speed
        self.interval = interval
        self.offline_reply = offline_reply
        self.offline_delay_s = offline_delay_s
        self._clock = clock
        self._meters: dict[str, _MeterState] = {}
        for meter in meters:
            images = {}
            for table in _REGISTER_TABLES:
                points = [p for p in meter.points if p.table is table]
                if points:
                    images[table] = _Image(points)
            self._meters[meter.name] = _MeterState(meter, images)
        self._by_unit = {s.meter.unit_id: s for s in self._meters.values()}
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._wall0 = 0.0
        self.last_t: float | None = None
        self.last_readings: dict[str, dict[str, float]] = {}

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (valid after :meth:`start`)."""
        return self._port

    async def start(self) -> int:
        """Bind, fill the registers for the start time, begin refreshing; returns the port."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._wall0 = self._clock()
        self.update(self.model.start)
        server = ModbusTcpServer(
            self._devices(), address=(self.host, self._port), trace_pdu=self._trace_pdu
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus's way of saying the bind failed
            raise OSError(f"grid simulator cannot listen on {self.host}:{self._port}") from exc
        self._server = server
        listener: Any = server.transport  # an asyncio.Server once listening
        self._port = int(listener.sockets[0].getsockname()[1])
        self._task = asyncio.create_task(self._refresh(), name="grid-sim-refresh")
        _LOG.info(
            "grid simulator listening on %s:%d, %d meters", self.host, self._port, len(self._meters)
        )
        return self._port

    async def stop(self) -> None:
        """Stop refreshing, close the listener and every client connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
            _LOG.info("grid simulator on %s:%d stopped", self.host, self._port)

    def endpoints(self) -> dict[str, tuple[str, int, int]]:
        """Meter name -> (host, port, unit id), what a gateway config needs."""
        return {n: (self.host, self._port, s.meter.unit_id) for n, s in self._meters.items()}

    # ---- time and values ----------------------------------------------------------------------

    def sim_time(self) -> float:
        """The simulated instant (epoch seconds) of now."""
        return self.model.start + (self._clock() - self._wall0) * self.speed

    def update(self, t: float | None = None) -> dict[str, dict[str, float]]:
        """Step the model to ``t`` (default: now in simulated time) and publish the values."""
        t = self.sim_time() if t is None else t
        readings = self.model.step(t)
        for name, state in self._meters.items():
            values = readings[name]
            failed = set()
            for image in state.images.values():
                for point in image.points:
                    if point.name not in values or not point.type.is_numeric:
                        continue
                    try:
                        words = encode_point(point, values[point.name])
                    except ValueError as exc:
                        failed.add(point.name)
                        if point.name not in state.failed_points:
                            _LOG.warning("sim meter %s: cannot serve %s: %s", name, point.name, exc)
                        continue
                    at = point.address - image.start
                    image.regs[at : at + len(words)] = words
            state.failed_points = frozenset(failed)
        self.last_t, self.last_readings = t, readings
        return readings

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.interval
            if next_at < loop.time() - self.interval:
                next_at = loop.time()  # fell behind (a stalled loop): skip, do not burst
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.update()

    # ---- faults -------------------------------------------------------------------------------

    def set_offline(self, meter: str, offline: bool) -> None:
        """Make a meter stop answering (see :class:`OfflineReply`), or bring it back."""
        state = self._state(meter)
        if state.offline != offline:
            _LOG.info("sim meter %s: %s", meter, "offline" if offline else "back online")
        state.offline = offline

    def set_exception(self, meter: str, code: int | None) -> None:
        """Answer every read of ``meter`` with Modbus exception ``code`` (None: normal again)."""
        state = self._state(meter)
        state.exception = None if code is None else ExcCodes(code)
        _LOG.info("sim meter %s: exception %s", meter, code)

    def _state(self, meter: str) -> _MeterState:
        try:
            return self._meters[meter]
        except KeyError:
            raise KeyError(f"no simulated meter {meter!r}") from None

    # ---- pymodbus plumbing --------------------------------------------------------------------

    def _devices(self) -> list[SimDevice]:
        devices = [
            SimDevice(
                id=s.meter.unit_id,
                simdata=_blocks(s.images),
                action=partial(self._action, s),
            )
            for s in self._meters.values()
        ]
        # Every other unit id gets 0x0A GATEWAY PATH UNAVAILABLE, whatever the address: a block
        # covering all of them, or pymodbus answers 0x02 for an address outside it first, and a
        # unit-id sweep (gridgate scan modbus) would "find" all 247 ids.
        every = [SimData(0, count=0x10000, values=0, datatype=DataType.REGISTERS, readonly=True)]
        bits = [SimData(0, values=False, datatype=DataType.BITS, readonly=True)]
        nobody = (bits, list(bits), every, list(every))
        devices.append(SimDevice(id=_CATCH_ALL_UNIT, simdata=nobody, action=_no_route))
        return devices

    async def _action(
        self,
        state: _MeterState,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Runs before pymodbus answers a request of this unit: faults, then fresh registers."""
        if state.offline:
            if self.offline_delay_s > 0:
                await asyncio.sleep(self.offline_delay_s)
            return ExcCodes.GATEWAY_NO_RESPONSE
        if state.exception is not None:
            return state.exception
        table = _FUNCTION_TABLES.get(function_code)
        image = state.images.get(table) if table is not None else None
        if image is not None and set_values is None:
            lo = address - start_address
            registers[lo : lo + count] = image.regs[
                address - image.start : address - image.start + count
            ]
        return None

    def _trace_pdu(self, sending: bool, pdu: Any) -> Any:
        """Drop requests to silent offline meters before pymodbus handles them."""
        if sending or self.offline_reply is not OfflineReply.SILENT:
            return pdu
        state = self._by_unit.get(getattr(pdu, "dev_id", -1))
        if state is not None and state.offline:
            return None  # pymodbus then sends nothing
        return pdu


def _blocks(
    images: dict[Table, _Image],
) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
    """pymodbus's four separate tables (coils, discrete, holding, input) for the images."""

    def registers(table: Table) -> list[SimData]:
        image = images.get(table)
        if image is None:
            return [SimData(0, datatype=DataType.INVALID)]
        return [
            SimData(
                image.start, values=list(image.regs), datatype=DataType.REGISTERS, readonly=True
            )
        ]

    bits = [SimData(0, values=False, datatype=DataType.BITS, readonly=True)]
    return (bits, list(bits), registers(Table.HOLDING), registers(Table.INPUT))


async def _no_route(*_args: Any) -> ExcCodes:
    return ExcCodes.GATEWAY_PATH_UNAVIABLE


# ---- command line --------------------------------------------------------------------------------


def _parse_start(text: str) -> float:
    if text == "now":
        return time.time()
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text).timestamp()


async def _serve(args: argparse.Namespace) -> None:
    model: MeterModel
    if args.feeder == "ieee-eu-lv":
        # start-up: the IEEE feeder solves a load flow per step (numpy, the C kernels); the
        # default synthetic feeder needs neither.
        from gateway.sim.lv_feeder import LvFeederModel

        model = LvFeederModel(args.seed, _parse_start(args.start))
    else:
        model = FeederModel(args.seed, _parse_start(args.start))
    meters = default_meters(model, args.profile, [Path(d) for d in args.profile_dir])
    sim = GridSimulator(
        args.host,
        args.port,
        meters,
        model,
        speed=args.speed,
        interval=args.interval,
        offline_reply=OfflineReply(args.offline_reply),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = await sim.start()
    print(f"listening on {args.host}:{port}", flush=True)
    for name, (_h, _p, unit) in sim.endpoints().items():
        print(f"meter {name} unit {unit}", flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.sim.grid_server",
        description="Simulated LV feeder meters over Modbus TCP.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5020, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start", default="now", help="simulated start: 'now', epoch s or ISO 8601"
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per wall second"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="register refresh period (wall s)"
    )
    parser.add_argument(
        "--feeder",
        choices=["street", "ieee-eu-lv"],
        default="street",
        help="street: 3 cabinets, 13 houses; ieee-eu-lv: the IEEE EU LV feeder, full load flow",
    )
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--profile-dir", action="append", default=[], help="extra profile folder")
    parser.add_argument(
        "--offline-reply", choices=[r.value for r in OfflineReply], default="gateway"
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
