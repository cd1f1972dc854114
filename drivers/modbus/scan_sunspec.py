"""SunSpec discovery for ``gridgate scan modbus --sunspec UNIT [--write-map FILE]``.

A SunSpec device holds ``SunS`` (0x5375 0x6E53) in two holding registers at one of a few base
addresses (40000 by far the most common, then 0 and 50000), followed by a chain of models, each
an id, a length (registers after these two) and its body, ended by id 0xFFFF. Every length and
id comes from the device, so the walk is bounded: at most :data:`MAX_MODELS` models and never
past register 65535; a chain that breaks is reported where it broke, with what came before.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.modbus.codec import decode_text
from drivers.modbus.device import MAX_GAP_LIMIT
from drivers.modbus.exceptions import ModbusConnectError, ModbusReadError
from drivers.modbus.scan_sunspec_map import (
    COMMON_DA,
    COMMON_ID,
    COMMON_STRINGS,
    METER_IDS,
    METER_LENGTH,
    PROFILE_NAME,
    MappedPoint,
    map_meter,
    profile_text,
)
from drivers.modbus.types import MAX_ADDRESS, MAX_READ_REGISTERS, ByteOrder, Table
from gateway.config.issues import printable

if TYPE_CHECKING:
    from drivers.modbus.scan import Target

SUNS = (0x5375, 0x6E53)
BASES = (40000, 0, 50000)
END_ID = 0xFFFF
MAX_MODELS = 64
EX_OK, EX_FAIL, EX_USAGE = 0, 1, 64

# Names of the models a meter or an inverter commonly carries (SunSpec model list).
MODEL_NAMES: Mapping[int, str] = {
    1: "common",
    2: "basic aggregator",
    10: "communication interface header",
    11: "ethernet link layer",
    12: "IPv4",
    13: "IPv6",
    17: "serial interface",
    101: "inverter (single phase)",
    102: "inverter (split phase)",
    103: "inverter (three phase)",
    111: "inverter (single phase, float)",
    112: "inverter (split phase, float)",
    113: "inverter (three phase, float)",
    120: "nameplate",
    121: "basic settings",
    122: "measurements and status",
    123: "immediate controls",
    124: "storage",
    126: "static volt-var",
    127: "frequency-watt parameter",
    128: "dynamic reactive current",
    129: "LVRT",
    130: "HVRT",
    131: "watt-PF",
    132: "volt-watt",
    145: "extended settings",
    160: "multiple MPPT inverter extension",
    201: "meter (single phase)",
    202: "meter (split single phase)",
    203: "meter (wye-connect three phase)",
    204: "meter (delta-connect three phase)",
    211: "meter (single phase, float)",
    212: "meter (split single phase, float)",
    213: "meter (wye-connect three phase, float)",
    214: "meter (delta-connect three phase, float)",
    220: "secure AC meter selected readings",
    302: "irradiance",
    303: "back of module temperature",
    304: "inclinometer",
    307: "base meteorological",
    401: "string combiner (current)",
    403: "string combiner (current)",
    701: "DER AC measurement",
    702: "DER capacity",
    703: "enter service",
    704: "DER AC controls",
    713: "DER storage capacity",
    714: "DER DC measurement",
    802: "battery base",
    803: "lithium-ion battery bank",
    804: "lithium-ion string",
    805: "lithium-ion module",
}


def model_name(model_id: int) -> str:
    if model_id in MODEL_NAMES:
        return MODEL_NAMES[model_id]
    if 64000 <= model_id <= 65534:
        return "vendor-specific"
    return "unknown to gridgate"


@dataclass(frozen=True)
class Model:
    id: int
    address: int  # of its ID register
    length: int  # registers after the ID and length registers


async def read_span(target: Target, unit: int, address: int, count: int) -> list[int]:
    """``count`` holding registers from ``address``, in reads of at most 125."""
    out: list[int] = []
    while len(out) < count:
        n = min(MAX_READ_REGISTERS, count - len(out))
        regs = await target.read(unit, Table.HOLDING, address + len(out), n)
        out.extend(int(r) for r in regs)
    return out


async def find_base(target: Target, unit: int) -> tuple[int | None, list[str]]:
    """The base address holding ``SunS``, or None and what each base gave instead."""
    tried: list[str] = []
    for base in BASES:
        try:
            regs = await read_span(target, unit, base, 2)
        except ModbusConnectError:
            raise
        except ModbusReadError as exc:
            tried.append(f"{base}: {exc.cause}")
            continue
        if tuple(regs) == SUNS:
            return base, tried
        tried.append(f"{base}: 0x{regs[0]:04X} 0x{regs[1]:04X}, not SunS")
    return None, tried


async def walk(target: Target, unit: int, base: int) -> tuple[list[Model], str | None]:
    """The models after the marker at ``base``, and why the walk stopped early (None at 0xFFFF)."""
    models: list[Model] = []
    address = base + 2
    while len(models) < MAX_MODELS:
        if address + 2 > MAX_ADDRESS + 1:
            return models, f"the model list runs past register {MAX_ADDRESS} without an end marker"
        try:
            model_id, length = await read_span(target, unit, address, 2)
        except ModbusConnectError:
            raise
        except ModbusReadError as exc:
            return models, f"model header at {address}: {exc.cause}"
        if model_id == END_ID:
            return models, None
        if model_id == 0:
            return models, f"model header at {address}: id 0 is not a model (no end marker?)"
        if address + 2 + length > MAX_ADDRESS + 1:
            return models, f"model {model_id} at {address}: length {length} runs past {MAX_ADDRESS}"
        models.append(Model(model_id, address, length))
        address += 2 + length
    return models, f"more than {MAX_MODELS} models without an end marker"


async def discover(
    target: Target, unit: int, write_map: Path | None, args: argparse.Namespace
) -> int:
    """Find the marker, list the models, print the common and meter models, write the map."""
    if write_map is not None and not PROFILE_NAME.fullmatch(write_map.stem):
        shown = printable(write_map.name)
        print(f"scan modbus: --write-map: {shown!r} must be a profile name (lower-case letters, "
              "digits, _ or -) and .toml", file=sys.stderr)  # fmt: skip
        return EX_USAGE
    base, tried = await find_base(target, unit)
    if base is None:
        print(f"scan modbus: unit {unit}: no SunSpec marker (SunS) at holding register "
              f"{', '.join(tried)}", file=sys.stderr)  # fmt: skip
        return EX_FAIL
    models, broken = await walk(target, unit, base)
    print(f"SunSpec device at unit {unit} on {target.peer}: marker at holding register {base}")
    print(f"{'address':>7}  {'model':>5}  {'length':>6}  name")
    for m in models:
        print(f"{m.address:>7}  {m.id:>5}  {m.length:>6}  {model_name(m.id)}")
    if broken is not None:
        print(f"model list incomplete: {broken}")
    common: dict[str, str] = {}
    meter: Model | None = None
    for m in models:
        if m.id == COMMON_ID and not common:
            common = await _read_common(target, unit, m)
        elif m.id in METER_IDS and meter is None:
            meter = m
    if meter is None:
        if write_map is not None:
            print("scan modbus: no meter model (201-204) to write a map from", file=sys.stderr)
            return EX_FAIL
        return EX_OK
    return await _meter(target, unit, meter, common, write_map, args)


async def _read_common(target: Target, unit: int, model: Model) -> dict[str, str]:
    """Print and return the common model's strings (shown escaped: they are the device's)."""
    try:
        regs = await read_span(target, unit, model.address, 2 + min(model.length, COMMON_DA - 1))
    except ModbusReadError as exc:
        print(f"common model at {model.address}: {exc.cause}")
        return {}
    out: dict[str, str] = {}
    for key, (offset, size, label) in COMMON_STRINGS.items():
        if offset + size <= len(regs):
            out[key] = printable(decode_text(regs[offset : offset + size], ByteOrder.ABCD))
            print(f"  {label:<14} {out[key]}".rstrip())
    if len(regs) > COMMON_DA:
        print(f"  {'device address':<14} {regs[COMMON_DA]}")
    return out


async def _meter(
    target: Target,
    unit: int,
    model: Model,
    common: Mapping[str, str],
    write_map: Path | None,
    args: argparse.Namespace,
) -> int:
    if model.length < METER_LENGTH:
        print(f"scan modbus: model {model.id} at {model.address} is {model.length} registers "
              f"long, not {METER_LENGTH}: not mapped", file=sys.stderr)  # fmt: skip
        return EX_FAIL if write_map is not None else EX_OK
    try:
        regs = await read_span(target, unit, model.address, 2 + METER_LENGTH)
    except ModbusConnectError:
        raise
    except ModbusReadError as exc:
        print(f"scan modbus: model {model.id} at {model.address}: {exc.cause}", file=sys.stderr)
        return EX_FAIL
    points, notes = map_meter(model.address, regs)
    print(f"model {model.id} ({model_name(model.id)}) at {model.address}:")
    for p in points:
        print(f"  {p.point.name:<22} {p.value:>12.6g} {p.point.unit:<4} "
              f"({p.point.sunspec} at {p.address}, {p.point.sf} = {p.sf})")  # fmt: skip
    for note in notes:
        print(f"  left out: {note}")
    if write_map is None:
        return EX_OK
    if not points:
        print("scan modbus: the meter model has no implemented point to map", file=sys.stderr)
        return EX_FAIL
    mn, md = common.get("Mn", ""), common.get("Md", "")
    text = profile_text(
        title=f"{mn} {md}".strip() or f"SunSpec meter (model {model.id})",
        manufacturer=mn,
        model=md,
        source=f"SunSpec model {model.id} at holding register {model.address}, read by "
        f"gridgate scan modbus from unit {unit} on {target.peer}",
        model_id=model.id,
        points=points,
    )
    try:
        write_map.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"scan modbus: cannot write {write_map}: {exc.strerror or exc}", file=sys.stderr)
        return EX_FAIL
    print(f"wrote {len(points)} point(s) to {write_map}; copy it to /etc/gridgate/profiles/ "
          "and name it in the meter's table:")  # fmt: skip
    for line in _meter_snippet(write_map.stem, unit, args, _widest_gap(points)):
        print(f"  {line}")
    return EX_OK


def _widest_gap(points: Sequence[MappedPoint]) -> int:
    """The most unmapped registers between two neighbours (the scale factors among them)."""
    spans = sorted((p.address, p.address + (2 if p.point.acc32 else 1)) for p in points)
    return max((b[0] - a[1] for a, b in pairwise(spans)), default=0)


def _meter_snippet(profile: str, unit: int, args: argparse.Namespace, gap: int) -> list[str]:
    lines = ["[grid.meters.METER]", f'profile = "{profile}"']
    if args.serial:
        lines += ['transport = "rtu"', 'bus = "BUS"   # the [modbus.buses.BUS] of the serial line']
    else:
        lines += ['transport = "tcp"', f'host = "{args.host}"', f"port = {args.port}"]
    lines.append(f"unit_id = {unit}")
    if 0 < gap <= MAX_GAP_LIMIT:
        lines.append(f"max_gap = {gap}   # one request across the scale-factor registers")
    return lines
