"""``gridgate scan modbus``: the arguments only. The scan itself (pymodbus, numpy) is imported
when it runs, so building gridgate's command line stays cheap for every other command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SWEEP_TIMEOUT = 0.2  # seconds per unit id: a sweep of 247 ids must not take minutes
READ_TIMEOUT = 1.0  # seconds per request of a probe or a SunSpec discovery
DEFAULT_CONCURRENCY = 4


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``modbus`` on the ``scan`` command's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "modbus",
        help="find unit ids, probe registers, discover SunSpec models and write a register map",
        description="Commission a Modbus meter: sweep unit ids, probe a register range in "
        "every type and word order, or discover a SunSpec device's models and write a starting "
        "register map (a profile file for the config).",
    )
    _link_options(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--units",
        metavar="IDS",
        help="sweep these unit ids, e.g. 1-247 or 1,3,10-20: one read each, every id that "
        "answers (data or a Modbus exception other than a gateway's 0x0A/0x0B) is listed",
    )
    what.add_argument(
        "--probe",
        metavar="UNIT",
        type=int,
        help="read --count registers from --start of this unit and print each as raw hex, "
        "u16, i16 and, with the next register, f32, i32 and u32 in the orders ABCD, CDAB, "
        "BADC and DCBA",
    )
    what.add_argument(
        "--sunspec",
        metavar="UNIT",
        type=int,
        help="look for the SunS marker at holding register 0, 40000 and 50000 of this unit and "
        "list the SunSpec models; with --write-map, write a register map of the common and "
        "meter models (201-204)",
    )
    p.add_argument(
        "--start",
        type=int,
        default=0,
        help="first register address, 0-based as on the wire (probe; the register a sweep "
        "reads; default 0)",
    )
    p.add_argument(
        "--count", type=int, default=10, help="registers to probe, 1 to 125 (default 10)"
    )
    p.add_argument(
        "--input",
        action="store_true",
        help="read input registers (function 4) instead of holding registers (function 3)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"TCP connections a sweep uses at once, 1 to 16 (default {DEFAULT_CONCURRENCY}; "
        "a serial line is always swept one id at a time)",
    )
    p.add_argument(
        "--write-map",
        metavar="FILE",
        type=Path,
        help="with --sunspec: write the register map as a profile file; its name (the file "
        "name without .toml) is what a meter's profile key names",
    )
    p.set_defaults(func=_run)
    return p


def _link_options(p: argparse.ArgumentParser) -> None:
    """Where the device is: TCP host and port, or the serial line and its framing."""
    link = p.add_mutually_exclusive_group(required=True)
    link.add_argument("--host", help="Modbus TCP device or TCP/RTU gateway (name or IP address)")
    link.add_argument("--serial", metavar="PORT", help="RS-485 serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--port", type=int, default=502, help="TCP port (default 502)")
    p.add_argument("--baud", type=int, default=9600, help="serial baud rate (default 9600)")
    p.add_argument(
        "--parity", choices=("N", "E", "O"), default="E", help="serial parity (default E)"
    )
    p.add_argument(
        "--stopbits", type=int, choices=(1, 2), default=1, help="serial stop bits (default 1)"
    )
    p.add_argument(
        "--bytesize", type=int, choices=(7, 8), default=8, help="serial data bits (default 8)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"seconds to wait for each reply (default {SWEEP_TIMEOUT:g} for a sweep, "
        f"{READ_TIMEOUT:g} otherwise; 0.01 to 60)",
    )


def _run(args: argparse.Namespace) -> int:
    # start-up: pymodbus and numpy take a while to import; only `gridgate scan modbus` needs them.
    from drivers.modbus.scan import run

    return run(args)
