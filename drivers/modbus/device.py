"""Connection settings of Modbus devices and serial buses, parsed and validated from the config.

Only the connection keys live here; the register-map keys of a device (profile, points, ...) are
the caller's, who names them in ``extra_keys`` so that the unknown-key check still sees the whole
table. Nothing here opens a port or a socket: validation happens at start, I/O later.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.rules import REQUIRED, integer_ranged, one_of, ranged
from gateway.config.text_rules import host_name, plain_text

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
# Seconds. Faster than 10 polls a second is a busy loop against a meter (1e-300 was 3,600
# requests a second and half a core); slower than an hour is a meter nobody watches (1e308 polled
# once and reported "ok" forever).
POLL_INTERVAL_RANGE = (0.1, 3600.0)
# Seconds per request (and per bus): below 10 ms nothing answers, even on loopback or RS-485 at
# 115200 baud; above a minute a dead meter holds the poll loop past the watchdog.
TIMEOUT_RANGE = (0.01, 60.0)
# Seconds of silence between RTU frames: t3.5 is 0.3 ms at 115200 baud and 32 ms at 1200 baud.
INTER_FRAME_GAP_RANGE = (0.0001, 1.0)
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

    checked = len(sink.issues)
    transport: Transport | None = cast(
        "Transport", one_of(sink, path, table, "transport", "tcp", ("tcp", "rtu"))
    )
    if len(sink.issues) > checked:
        transport = None  # not known: neither the tcp nor the rtu keys can be judged
    unit_id = integer_ranged(sink, path, table, "unit_id", DEFAULT_UNIT_ID, 0, 247)
    if transport == "rtu" and unit_id == 0:
        sink.error(join(path, "unit_id"), "0 is the broadcast address; nothing answers a read")
    poll_interval = ranged(
        sink, path, table, "poll_interval", DEFAULT_POLL_INTERVAL, *POLL_INTERVAL_RANGE,
        unit="seconds",
    )  # fmt: skip
    # An rtu device without its own timeout inherits its bus's, so leave it unset here.
    timeout_default = DEFAULT_TIMEOUT if transport != "rtu" else None
    timeout = ranged(sink, path, table, "timeout", timeout_default, *TIMEOUT_RANGE, unit="seconds")
    retries = integer_ranged(sink, path, table, "retries", 0, 0, MAX_RETRIES)
    max_gap = integer_ranged(sink, path, table, "max_gap", DEFAULT_MAX_GAP, 0, MAX_GAP_LIMIT)

    host: str | None = None
    port = DEFAULT_TCP_PORT
    bus: str | None = None
    if transport == "tcp":
        host, port = _tcp_keys(sink, path, table)
    elif transport == "rtu":
        bus = _rtu_keys(sink, path, table, buses)

    if len(sink.issues) > before or transport is None:
        return None
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


def _tcp_keys(sink: IssueSink, path: str, table: Mapping[str, Any]) -> tuple[str | None, int]:
    # A NUL cut the name short in the resolver, a newline forged a log line per attempt.
    host = host_name(sink, path, table, "host", None)
    port = integer_ranged(sink, path, table, "port", DEFAULT_TCP_PORT, 1, 65535)
    if "bus" in table:
        sink.error(join(path, "bus"), 'only an rtu device names a bus (transport = "rtu")')
    return host, port


def _rtu_keys(
    sink: IssueSink, path: str, table: Mapping[str, Any], buses: Collection[str] | None
) -> str | None:
    bus: str | None = take(sink, path, table, "bus", str)
    if bus is not None and buses is not None and bus not in buses:
        known = ", ".join(sorted(buses)) or "none configured"
        sink.error(join(path, "bus"), f"no serial bus {bus!r} (known: {known})")
    for key in ("host", "port"):
        if key in table:
            sink.error(join(path, key), "an rtu device is reached through its bus, not a host")
    return bus


def parse_bus(
    name: str, table: Mapping[str, Any], sink: IssueSink, path: str
) -> SerialBusSettings | None:
    """Validate one ``[modbus.buses.NAME]`` table; report every problem, return None if any."""
    before = len(sink.issues)
    check_keys(sink, path, table, set(BUS_KEYS))

    # A serial device path such as /dev/ttyUSB0 or a /dev/serial/by-id/ link.
    port = plain_text(sink, path, table, "port", REQUIRED, max_len=255)
    if port is not None and not port.strip():
        sink.error(join(path, "port"), "must name a serial device such as /dev/ttyUSB0")
    baudrate = one_of(sink, path, table, "baudrate", 19200, sorted(STANDARD_BAUDRATES))
    parity = cast("Parity", one_of(sink, path, table, "parity", "E", ("N", "E", "O")))
    stopbits = one_of(sink, path, table, "stopbits", 1, (1, 2))
    bytesize = one_of(sink, path, table, "bytesize", 8, (7, 8))
    timeout = ranged(sink, path, table, "timeout", DEFAULT_TIMEOUT, *TIMEOUT_RANGE, unit="seconds")
    gap = ranged(sink, path, table, "inter_frame_gap", None, *INTER_FRAME_GAP_RANGE, unit="seconds")

    if len(sink.issues) > before:
        return None
    assert port is not None
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
