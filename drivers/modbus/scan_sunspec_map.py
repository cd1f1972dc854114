"""SunSpec models as gridgate register maps: the common model's text and the meter models' points.

Why our own reader rather than pysunspec2: we map six models (1 and 201-204; the four meter
models share one layout), while pysunspec2 brings its JSON definitions of every model and its
own Modbus client, which would bypass the driver's timeouts, junk handling and serial line
owner. The offsets below are from the SunSpec model definitions (``model_1.json``,
``model_201.json`` .. ``model_204.json`` of github.com/sunspec/models), counted from the model's
ID register.

A SunSpec value is an integer with a scale factor in a register of its own (``sunssf``, value x
10^sf). A gridgate map has a constant ``scale``, so the map takes the scale factor read at scan
time. SunSpec lets a device change a scale factor, but meters keep theirs fixed in practice;
the map says which register holds each, to re-check after a firmware update.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

COMMON_ID = 1
METER_IDS = frozenset({201, 202, 203, 204})
METER_LENGTH = 105  # registers after the header, in all four meter models
NOT_IMPLEMENTED_I16 = 0x8000  # int16 and sunssf "not implemented"
MAX_SF = 10  # a scale factor outside -10..10 is junk, not a unit

# name: (offset from the ID register, size in registers, label)
COMMON_STRINGS: Mapping[str, tuple[int, int, str]] = {
    "Mn": (2, 16, "manufacturer"),
    "Md": (18, 16, "model"),
    "Opt": (34, 8, "options"),
    "Vr": (42, 8, "version"),
    "SN": (50, 16, "serial number"),
}
COMMON_DA = 66  # device address (uint16)


@dataclass(frozen=True)
class MeterPoint:
    """One point of the meter layout: SunSpec name, gridgate name, where, its scale factor."""

    sunspec: str
    name: str
    offset: int  # from the model's ID register
    acc32: bool  # a 32-bit energy accumulator (else int16)
    sf: str  # the sunssf point of this value
    sf_offset: int
    unit: str
    exponent: int = 0  # on top of 10^sf: -3 for Wh -> kWh, -2 for percent -> -1..1
    valid: tuple[float, float] = (-1e7, 1e7)


def _meter_layout() -> tuple[MeterPoint, ...]:
    points: list[MeterPoint] = []

    def group(
        sf: str,
        sf_offset: int,
        unit: str,
        valid: tuple[float, float],
        *rows: tuple[str, str, int],
        exponent: int = 0,
    ) -> None:
        for sunspec, name, offset in rows:
            points.append(
                MeterPoint(sunspec, name, offset, False, sf, sf_offset, unit, exponent, valid)
            )

    group("A_SF", 6, "A", (0, 30000), ("A", "current_sum", 2))
    group("A_SF", 6, "A", (0, 10000), ("AphA", "current_l1", 3), ("AphB", "current_l2", 4),
          ("AphC", "current_l3", 5))  # fmt: skip
    group("V_SF", 15, "V", (0, 1000), ("PhV", "voltage_avg", 7), ("PhVphA", "voltage_l1", 8),
          ("PhVphB", "voltage_l2", 9), ("PhVphC", "voltage_l3", 10), ("PPV", "voltage_ll_avg", 11),
          ("PhVphAB", "voltage_l1_l2", 12), ("PhVphBC", "voltage_l2_l3", 13),
          ("PhVphCA", "voltage_l3_l1", 14))  # fmt: skip
    group("Hz_SF", 17, "Hz", (40, 70), ("Hz", "frequency", 16))
    group("W_SF", 22, "W", (-3e7, 3e7), ("W", "power_total", 18))
    group("W_SF", 22, "W", (-1e7, 1e7), ("WphA", "power_l1", 19), ("WphB", "power_l2", 20),
          ("WphC", "power_l3", 21))  # fmt: skip
    group("VA_SF", 27, "VA", (0, 3e7), ("VA", "apparent_power_total", 23))
    group("VA_SF", 27, "VA", (0, 1e7), ("VAphA", "apparent_power_l1", 24),
          ("VAphB", "apparent_power_l2", 25), ("VAphC", "apparent_power_l3", 26))  # fmt: skip
    group("VAR_SF", 32, "var", (-3e7, 3e7), ("VAR", "reactive_power_total", 28))
    group("VAR_SF", 32, "var", (-1e7, 1e7), ("VARphA", "reactive_power_l1", 29),
          ("VARphB", "reactive_power_l2", 30), ("VARphC", "reactive_power_l3", 31))  # fmt: skip
    # SunSpec gives power factor in percent; the common names are -1..1.
    group("PF_SF", 37, "", (-1, 1), ("PF", "power_factor_total", 33),
          ("PFphA", "power_factor_l1", 34), ("PFphB", "power_factor_l2", 35),
          ("PFphC", "power_factor_l3", 36), exponent=-2)  # fmt: skip
    for sunspec, name, offset in (("TotWhExp", "energy_export", 38), ("TotWhImp", "energy_import", 46)):  # noqa: E501  # fmt: skip
        points.append(MeterPoint(sunspec, name, offset, True, "TotWh_SF", 54, "kWh", -3, (0, 1e9)))
    return tuple(points)


METER_POINTS: tuple[MeterPoint, ...] = _meter_layout()


@dataclass(frozen=True)
class MappedPoint:
    """A meter point as read at scan time: its map entry and the value it gave."""

    point: MeterPoint
    address: int  # absolute protocol address
    sf: int
    sf_address: int
    value: float

    @property
    def scale(self) -> float:
        return float(10.0 ** (self.sf + self.point.exponent))


def map_meter(model_address: int, regs: Sequence[int]) -> tuple[list[MappedPoint], list[str]]:
    """The points of a meter model whose body (from its ID register) is ``regs``: the ones the
    device implements, and a note per point left out and why."""
    mapped: list[MappedPoint] = []
    notes: list[str] = []
    for p in METER_POINTS:
        if p.offset + (2 if p.acc32 else 1) > len(regs) or p.sf_offset >= len(regs):
            notes.append(f"{p.sunspec}: beyond the model's {len(regs)} registers")
            continue
        sf = _signed(regs[p.sf_offset])
        if regs[p.sf_offset] == NOT_IMPLEMENTED_I16:
            notes.append(f"{p.sunspec}: its scale factor {p.sf} is not implemented")
            continue
        if not -MAX_SF <= sf <= MAX_SF:
            notes.append(f"{p.sunspec}: scale factor {p.sf} = {sf} is outside -10..10")
            continue
        if p.acc32:
            raw = (regs[p.offset] << 16) | regs[p.offset + 1]
        elif regs[p.offset] == NOT_IMPLEMENTED_I16:
            notes.append(f"{p.sunspec}: not implemented (0x8000)")
            continue
        else:
            raw = _signed(regs[p.offset])
        scale = 10.0 ** (sf + p.exponent)
        mapped.append(
            MappedPoint(p, model_address + p.offset, sf, model_address + p.sf_offset, raw * scale)
        )
    return mapped, notes


def _signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (``\\"``, ``\\\\``, ``\\uXXXX``)."""
    return json.dumps(text, ensure_ascii=True)


def profile_text(
    title: str,
    manufacturer: str,
    model: str,
    source: str,
    model_id: int,
    points: Sequence[MappedPoint],
) -> str:
    """A profile file (``profiles/README.md`` format) for the mapped meter points."""
    lines = [
        f"# Written by gridgate scan modbus --sunspec from SunSpec model {model_id}: a starting",
        "# map, check each value against the meter's display before relying on it. Scales are",
        "# 10^scale-factor as read at scan time (the register of each factor is named); rescan",
        "# after a firmware update.",
        "[profile]",
        f"name = {toml_string(title)}",
        f"manufacturer = {toml_string(manufacturer)}",
        f"model = {toml_string(model)}",
        f"source = {toml_string(source)}",
        f"notes = {toml_string('SunSpec scale factors fixed at the values read when scanned')}",
        "",
        "[defaults]",
        'table = "holding"',
        'type = "i16"',
        'order = "ABCD"',
    ]
    for m in points:
        p = m.point
        lines += [
            "",
            "[[points]]",
            f"name = {toml_string(p.name)}  # SunSpec {p.sunspec}, read {m.value:.6g} {p.unit}".rstrip(),  # noqa: E501
            f"address = {m.address}",
        ]
        if p.acc32:
            lines.append('type = "u32"  # acc32')
        lines += [
            f"scale = {m.scale!r}  # {p.sf} = {m.sf} at {m.sf_address}",
            f"unit = {toml_string(p.unit)}",
            f"valid_min = {p.valid[0]:g}",
            f"valid_max = {p.valid[1]:g}",
        ]
    return "\n".join(lines) + "\n"
