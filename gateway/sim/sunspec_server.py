"""A SunSpec meter over Modbus TCP: the SunS marker, the common model, a meter model, the end.

For ``gridgate scan modbus --sunspec`` tests and demos. The register image is built here from
the SunSpec model definitions' ordered point lists (name and size, offsets counted by walking
them), not from the scanner's offset table, so a wrong offset on either side shows up as a
wrong value. The values are fixed and plausible (a three-phase household feed-in meter);
:attr:`SunSpecSimulator.expected` holds them under gridgate's common point names.

``python -m gateway.sim.sunspec_server --port 0`` runs it standalone (prints
``listening on HOST:PORT`` once ready; exits 0 on SIGTERM/SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

SUNS = [0x5375, 0x6E53]
END = [0xFFFF, 0]
NOT_IMPLEMENTED = 0x8000
VENDOR_MODEL = 64001  # a model the scanner has no layout for: the walk must step over it

# The meter models' points in order (SunSpec model_201..204.json): name, registers.
_METER_POINTS: tuple[tuple[str, int], ...] = (
    ("A", 1), ("AphA", 1), ("AphB", 1), ("AphC", 1), ("A_SF", 1),
    ("PhV", 1), ("PhVphA", 1), ("PhVphB", 1), ("PhVphC", 1),
    ("PPV", 1), ("PhVphAB", 1), ("PhVphBC", 1), ("PhVphCA", 1), ("V_SF", 1),
    ("Hz", 1), ("Hz_SF", 1),
    ("W", 1), ("WphA", 1), ("WphB", 1), ("WphC", 1), ("W_SF", 1),
    ("VA", 1), ("VAphA", 1), ("VAphB", 1), ("VAphC", 1), ("VA_SF", 1),
    ("VAR", 1), ("VARphA", 1), ("VARphB", 1), ("VARphC", 1), ("VAR_SF", 1),
    ("PF", 1), ("PFphA", 1), ("PFphB", 1), ("PFphC", 1), ("PF_SF", 1),
    ("TotWhExp", 2), ("TotWhExpPhA", 2), ("TotWhExpPhB", 2), ("TotWhExpPhC", 2),
    ("TotWhImp", 2), ("TotWhImpPhA", 2), ("TotWhImpPhB", 2), ("TotWhImpPhC", 2),
    ("TotWh_SF", 1),
    ("TotVAhExp", 2), ("TotVAhExpPhA", 2), ("TotVAhExpPhB", 2), ("TotVAhExpPhC", 2),
    ("TotVAhImp", 2), ("TotVAhImpPhA", 2), ("TotVAhImpPhB", 2), ("TotVAhImpPhC", 2),
    ("TotVAh_SF", 1),
    ("TotVArhImpQ1", 2), ("TotVArhImpQ1PhA", 2), ("TotVArhImpQ1PhB", 2), ("TotVArhImpQ1PhC", 2),
    ("TotVArhImpQ2", 2), ("TotVArhImpQ2PhA", 2), ("TotVArhImpQ2PhB", 2), ("TotVArhImpQ2PhC", 2),
    ("TotVArhExpQ3", 2), ("TotVArhExpQ3PhA", 2), ("TotVArhExpQ3PhB", 2), ("TotVArhExpQ3PhC", 2),
    ("TotVArhExpQ4", 2), ("TotVArhExpQ4PhA", 2), ("TotVArhExpQ4PhB", 2), ("TotVArhExpQ4PhC", 2),
    ("TotVArh_SF", 1),
    ("Evt", 2),
)  # fmt: skip

# Raw register values (before the scale factor) and the factors, a three-phase feed-in meter.
_RAW: Mapping[str, int] = {
    "A_SF": -2, "AphA": 1234, "AphB": 1100, "AphC": 1050, "A": 3384,
    "V_SF": -1, "PhVphA": 2312, "PhVphB": 2298, "PhVphC": 2305, "PhV": 2305,
    "PhVphAB": 3993, "PhVphBC": 3985, "PhVphCA": 3999, "PPV": 3992,
    "Hz_SF": -2, "Hz": 5001,
    "W_SF": 0, "WphA": 2800, "WphB": 2500, "WphC": 2400, "W": 7700,
    "VA_SF": 0, "VAphA": 2830, "VAphB": 2520, "VAphC": 2420, "VA": 7770,
    "VAR_SF": 0, "VARphA": 300, "VARphB": -200, "VARphC": 150, "VAR": 250,
    "PF_SF": -1, "PFphA": 989, "PFphB": 992, "PFphC": 992, "PF": 991,  # percent x 10
    "TotWh_SF": 0, "TotWhImp": 12_345_678, "TotWhExp": 4_321_000,
    "TotVAh_SF": NOT_IMPLEMENTED, "TotVArh_SF": NOT_IMPLEMENTED,
}  # fmt: skip

# gridgate's common names of the mapped points, as (SunSpec name, extra power of ten).
_EXPECTED: Mapping[str, tuple[str, int]] = {
    "current_sum": ("A", 0), "current_l1": ("AphA", 0), "current_l2": ("AphB", 0),
    "current_l3": ("AphC", 0), "voltage_avg": ("PhV", 0), "voltage_l1": ("PhVphA", 0),
    "voltage_l2": ("PhVphB", 0), "voltage_l3": ("PhVphC", 0), "voltage_ll_avg": ("PPV", 0),
    "voltage_l1_l2": ("PhVphAB", 0), "voltage_l2_l3": ("PhVphBC", 0),
    "voltage_l3_l1": ("PhVphCA", 0), "frequency": ("Hz", 0), "power_total": ("W", 0),
    "power_l1": ("WphA", 0), "power_l2": ("WphB", 0), "power_l3": ("WphC", 0),
    "apparent_power_total": ("VA", 0), "apparent_power_l1": ("VAphA", 0),
    "apparent_power_l2": ("VAphB", 0), "apparent_power_l3": ("VAphC", 0),
    "reactive_power_total": ("VAR", 0), "reactive_power_l1": ("VARphA", 0),
    "reactive_power_l2": ("VARphB", 0), "reactive_power_l3": ("VARphC", 0),
    "power_factor_total": ("PF", -2), "power_factor_l1": ("PFphA", -2),
    "power_factor_l2": ("PFphB", -2), "power_factor_l3": ("PFphC", -2),
    "energy_import": ("TotWhImp", -3), "energy_export": ("TotWhExp", -3),
}  # fmt: skip


def _text(text: str, registers: int) -> list[int]:
    data = text.encode("ascii").ljust(2 * registers, b"\0")
    return [(data[i] << 8) | data[i + 1] for i in range(0, 2 * registers, 2)]


def common_model(unit_id: int, manufacturer: str, model: str, serial: str) -> list[int]:
    """Model 1 (length 66): Mn, Md, Opt, Vr, SN, DA, Pad."""
    body = (
        _text(manufacturer, 16) + _text(model, 16) + _text("", 8) + _text("1.0.0", 8)
        + _text(serial, 16) + [unit_id, NOT_IMPLEMENTED]
    )  # fmt: skip
    return [1, len(body), *body]


def meter_model(model_id: int = 203, raw: Mapping[str, int] = _RAW) -> list[int]:
    """A meter model (201-204; length 105). Points not in ``raw`` read not implemented (0x8000
    for int16, 0 for the 32-bit accumulators and the event bits)."""
    body: list[int] = []
    for name, size in _METER_POINTS:
        if size == 2:
            value = raw.get(name, 0)
            body += [(value >> 16) & 0xFFFF, value & 0xFFFF]
        else:
            body.append(raw.get(name, NOT_IMPLEMENTED) & 0xFFFF)
    return [model_id, len(body), *body]


def single_phase(raw: Mapping[str, int]) -> dict[str, int]:
    """The values of a single-phase meter (model 201): phase A only, the others and every
    line-to-line voltage not implemented, so they read 0x8000."""
    other = ("phB", "PhB", "phC", "PhC", "AB", "BC", "CA", "PPV")
    out = {k: v for k, v in raw.items() if not any(o in k for o in other)}
    for total in ("A", "PhV", "W", "VA", "VAR", "PF"):
        out[total] = out[f"{total}phA" if total != "PhV" else "PhVphA"]
    return out


def expected_values(raw: Mapping[str, int] = _RAW) -> dict[str, float]:
    """The value of every mapped point under its gridgate name: raw x 10^(sf + extra)."""
    sf_of = {
        "A": "A_SF", "Ph": "V_SF", "PP": "V_SF", "Hz": "Hz_SF", "W": "W_SF", "VA": "VA_SF",
        "VAR": "VAR_SF", "PF": "PF_SF", "Tot": "TotWh_SF",
    }  # fmt: skip
    out: dict[str, float] = {}
    for name, (point, extra) in _EXPECTED.items():
        if point not in raw:
            continue
        prefix = max((p for p in sf_of if point.startswith(p)), key=len)
        out[name] = raw[point] * 10.0 ** (raw[sf_of[prefix]] + extra)
    return out


class SunSpecSimulator:
    """One SunSpec device (``unit_id``) on a Modbus TCP port, holding registers from ``base``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        unit_id: int = 1,
        base: int = 40000,
        meter: int = 203,
        vendor_model: bool = True,
        end_marker: bool = True,
    ) -> None:
        self.host, self._port, self.unit_id, self.base = host, port, unit_id, base
        image = SUNS + common_model(unit_id, "gridgate", f"SIM-{meter}", "SIM0001")
        if vendor_model:
            image += [VENDOR_MODEL, 4, 1, 2, 3, 4]
        raw = single_phase(_RAW) if meter == 201 else _RAW
        image += meter_model(meter, raw)
        if end_marker:
            image += END
        self.registers: list[int] = image
        self.expected = expected_values(raw)
        self._server: Any = None

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> int:
        device = SimDevice(
            id=self.unit_id,
            simdata=(
                [SimData(0, values=False, datatype=DataType.BITS, readonly=True)],
                [SimData(0, values=False, datatype=DataType.BITS, readonly=True)],
                [SimData(self.base, values=list(self.registers), datatype=DataType.REGISTERS,
                         readonly=True)],
                [SimData(0, datatype=DataType.INVALID)],
            ),
        )  # fmt: skip
        # Every other unit id gets 0x0A GATEWAY PATH UNAVAILABLE (pymodbus's own answer, 0x04,
        # would look like a device): the catch-all covers every address, so its action runs.
        every = [SimData(0, count=0x10000, values=0, datatype=DataType.REGISTERS, readonly=True)]
        bits = [SimData(0, values=False, datatype=DataType.BITS, readonly=True)]
        nobody = SimDevice(id=0, simdata=(bits, list(bits), every, list(every)), action=_no_route)
        server = ModbusTcpServer([device, nobody], address=(self.host, self._port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus's way of saying the bind failed
            raise OSError(f"sunspec simulator cannot listen on {self.host}:{self._port}") from exc
        self._server = server
        listener: Any = server.transport  # an asyncio.Server once listening
        self._port = int(listener.sockets[0].getsockname()[1])
        return self._port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None


async def _no_route(*_args: Any) -> ExcCodes:
    return ExcCodes.GATEWAY_PATH_UNAVIABLE


async def _serve(args: argparse.Namespace) -> None:
    sim = SunSpecSimulator(
        args.host, args.port, unit_id=args.unit, base=args.base, meter=args.meter
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = await sim.start()
    print(f"listening on {args.host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.sim.sunspec_server",
        description="A simulated SunSpec meter (models 1 and 201-204) over Modbus TCP.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5021, help="0 picks a free port")
    parser.add_argument("--unit", type=int, default=1, help="unit id (default 1)")
    parser.add_argument("--base", type=int, default=40000, help="address of the SunS marker")
    parser.add_argument(
        "--meter", type=int, choices=(201, 202, 203, 204), default=203, help="meter model id"
    )
    asyncio.run(_serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
