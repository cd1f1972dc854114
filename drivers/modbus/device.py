"""Connection settings of Modbus devices and serial buses, parsed and validated from the config.

Only the connection keys live here; the register-map keys of a device (profile, points, ...) are
the caller's, who names them in ``extra_keys`` so that the unknown-key check still sees the whole
table. Nothing here opens a port or a socket: validation happens at start, I/O later.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gateway.config.issues import IssueSink, check_keys, join, take

Transport = Literal["tcp", "rtu"]
Parity = Literal["N", "E", "O"]

STANDARD_BAUDRATES: frozenset[int] = frozenset(
    {1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200}
)

DEVICE_KEYS: frozenset[str] = frozenset(
    {
        "transport",
        "host",
        "port",
        "bus",
        "unit_id",
        "poll_interval",
        "timeout",
        "retries",
        "max_gap",
    }
)
BUS_KEYS: frozenset[str] = frozenset(
    {"port", "baudrate", "parity", "stopbits", "bytesize", "inter_frame_gap", "timeout"}
)

DEFAULT_TCP_PORT = 502
DEFAULT_UNIT_ID = 1
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_TIMEOUT = 1.0
DEFAULT_MAX_GAP = 0  # merge only truly contiguous registers unless the map says otherwise
MAX_RETRIES = 5
MAX_GAP_LIMIT = 124  # a merged request must still fit in one 125-register read


@dataclass(frozen=True)
class DeviceConnection:
    """How to reach one device and how often to poll it."""

    name: str
    transport: Transport
    unit_id: int
    poll_interval: float
    timeout: float | None  # per request; None on an rtu device means the bus's timeout
    retries: int = 0  # the poll schedule is the retry: a retry only delays the other slaves
    max_gap: int = DEFAULT_MAX_GAP
    host: str | None = None  # tcp only
    port: int = DEFAULT_TCP_PORT  # tcp only
    bus: str | None = None  # rtu only: the name of a [modbus.buses.NAME] table


@dataclass(frozen=True)
class SerialBusSettings:
    """One RS-485 line: the serial port settings and the gap every frame must keep."""

    name: str
    port: str
    baudrate: int = 19200
    parity: Parity = "E"  # the Modbus serial line spec's default framing is 8E1
    stopbits: int = 1
    bytesize: int = 8
    inter_frame_gap: float = 0.0  # seconds; see default_inter_frame_gap()
    timeout: float = DEFAULT_TIMEOUT


def default_inter_frame_gap(baudrate: int, bytesize: int, parity: str, stopbits: int) -> float:
    """3.5 character times (t3.5) in seconds, fixed at 1.75 ms above 19200 baud.

    The spec fixes the gap above 19200 baud because UARTs there time characters too coarsely
    for a computed value to mean anything.
    """
    if baudrate > 19200:
        return 0.00175
    bits_per_char = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
    return 3.5 * bits_per_char / baudrate


def _positive(sink: IssueSink, path: str, key: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not 0 < value < math.inf:  # also refuses nan, which compares false
        sink.error(join(path, key), f"must be a positive number of seconds, got {value!r}")
        return None
    return value


def _in_range(
    sink: IssueSink, path: str, key: str, value: int | None, low: int, high: int
) -> int | None:
    if value is None:
        return None
    if not low <= value <= high:
        sink.error(join(path, key), f"must be in {low}..{high}, got {value}")
        return None
    return value


def parse_device(
    name: str,
    table: Mapping[str, Any],
    sink: IssueSink,
    path: str,
    extra_keys: Collection[str] = (),
    buses: Collection[str] | None = None,
) -> DeviceConnection | None:
    """Validate one ``[modbus.devices.NAME]`` table; report every problem, return None if any.

    ``extra_keys`` are the keys the caller consumes itself (register map). ``buses``, when given,
    are the names of the configured serial buses, so an rtu device naming a missing bus is
    reported here; without it the caller checks ``DeviceConnection.bus`` itself.
    """
    before = len(sink.issues)
    check_keys(sink, path, table, set(DEVICE_KEYS) | set(extra_keys))

    transport = take(sink, path, table, "transport", str, "tcp")
    if transport not in ("tcp", "rtu"):
        sink.error(join(path, "transport"), f'must be "tcp" or "rtu", got {transport!r}')
        transport = None

    unit_id = _in_range(
        sink, path, "unit_id", take(sink, path, table, "unit_id", int, DEFAULT_UNIT_ID), 0, 247
    )
    if transport == "rtu" and unit_id == 0:
        sink.error(join(path, "unit_id"), "0 is the broadcast address; nothing answers a read")
    poll_interval = _positive(
        sink,
        path,
        "poll_interval",
        take(sink, path, table, "poll_interval", float, DEFAULT_POLL_INTERVAL),
    )
    # An rtu device without its own timeout inherits its bus's, so leave it unset here.
    timeout_default = DEFAULT_TIMEOUT if transport != "rtu" else None
    timeout = _positive(
        sink, path, "timeout", take(sink, path, table, "timeout", float, timeout_default)
    )
    retries = _in_range(
        sink, path, "retries", take(sink, path, table, "retries", int, 0), 0, MAX_RETRIES
    )
    max_gap = _in_range(
        sink,
        path,
        "max_gap",
        take(sink, path, table, "max_gap", int, DEFAULT_MAX_GAP),
        0,
        MAX_GAP_LIMIT,
    )

    host: str | None = None
    port = DEFAULT_TCP_PORT
    bus: str | None = None
    if transport == "tcp":
        host = take(sink, path, table, "host", str)
        if host is not None and not host.strip():
            sink.error(join(path, "host"), "must not be empty")
        port = (
            _in_range(
                sink, path, "port", take(sink, path, table, "port", int, DEFAULT_TCP_PORT), 1, 65535
            )
            or DEFAULT_TCP_PORT
        )
        if "bus" in table:
            sink.error(join(path, "bus"), 'only an rtu device names a bus (transport = "rtu")')
    elif transport == "rtu":
        bus = take(sink, path, table, "bus", str)
        if bus is not None and buses is not None and bus not in buses:
            known = ", ".join(sorted(buses)) or "none configured"
            sink.error(join(path, "bus"), f"no serial bus {bus!r} (known: {known})")
        for key in ("host", "port"):
            if key in table:
                sink.error(join(path, key), "an rtu device is reached through its bus, not a host")

    if len(sink.issues) > before:
        return None
    assert transport is not None and unit_id is not None and retries is not None
    assert poll_interval is not None and max_gap is not None
    return DeviceConnection(
        name=name,
        transport=transport,
        unit_id=unit_id,
        poll_interval=poll_interval,
        timeout=timeout,
        retries=retries,
        max_gap=max_gap,
        host=host,
        port=port,
        bus=bus,
    )


def parse_bus(
    name: str, table: Mapping[str, Any], sink: IssueSink, path: str
) -> SerialBusSettings | None:
    """Validate one ``[modbus.buses.NAME]`` table; report every problem, return None if any."""
    before = len(sink.issues)
    check_keys(sink, path, table, set(BUS_KEYS))

    port = take(sink, path, table, "port", str)
    if port is not None and not port.strip():
        sink.error(join(path, "port"), "must name a serial device such as /dev/ttyUSB0")
    baudrate = take(sink, path, table, "baudrate", int, 19200)
    if baudrate is not None and baudrate not in STANDARD_BAUDRATES:
        rates = ", ".join(str(b) for b in sorted(STANDARD_BAUDRATES))
        sink.error(join(path, "baudrate"), f"must be one of {rates}, got {baudrate}")
        baudrate = None
    parity = take(sink, path, table, "parity", str, "E")
    if parity is not None and parity not in ("N", "E", "O"):
        sink.error(join(path, "parity"), f'must be "N", "E" or "O", got {parity!r}')
        parity = None
    stopbits = take(sink, path, table, "stopbits", int, 1)
    if stopbits is not None and stopbits not in (1, 2):
        sink.error(join(path, "stopbits"), f"must be 1 or 2, got {stopbits}")
        stopbits = None
    bytesize = take(sink, path, table, "bytesize", int, 8)
    if bytesize is not None and bytesize not in (7, 8):
        sink.error(join(path, "bytesize"), f"must be 7 or 8, got {bytesize}")
        bytesize = None
    timeout = _positive(
        sink, path, "timeout", take(sink, path, table, "timeout", float, DEFAULT_TIMEOUT)
    )
    gap = _positive(
        sink, path, "inter_frame_gap", take(sink, path, table, "inter_frame_gap", float, None)
    )
    if gap is not None and gap > 1.0:
        sink.error(join(path, "inter_frame_gap"), f"must be at most 1 s, got {gap}")

    if len(sink.issues) > before:
        return None
    assert port is not None and baudrate is not None and parity is not None
    assert stopbits is not None and bytesize is not None and timeout is not None
    if gap is None:
        gap = default_inter_frame_gap(baudrate, bytesize, parity, stopbits)
    return SerialBusSettings(
        name=name,
        port=port,
        baudrate=baudrate,
        parity=parity,
        stopbits=stopbits,
        bytesize=bytesize,
        inter_frame_gap=gap,
        timeout=timeout,
    )


def parse_buses(
    table: Mapping[str, Any], sink: IssueSink, path: str
) -> dict[str, SerialBusSettings]:
    """Validate every bus of a ``[modbus.buses]`` table; the valid ones by name."""
    buses: dict[str, SerialBusSettings] = {}
    for name, sub in table.items():
        where = join(path, name)
        if not isinstance(sub, Mapping):
            sink.error(where, f"expected a table, got {type(sub).__name__}")
            continue
        settings = parse_bus(name, sub, sink, where)
        if settings is not None:
            buses[name] = settings
    return buses
