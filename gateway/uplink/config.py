"""``[uplink]``: the MQTT session upstream."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.registry import Section, SectionInput
from gateway.config.root import GatewaySettings
from gateway.config.secrets import Secret, allowed_secret_keys, read_secret

_PROTOCOLS = ("3.1.1", "5")
_ENCODINGS = ("json",)


@dataclass(frozen=True)
class TlsSettings:
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    key_password: Secret | None
    insecure: bool  # skip hostname check: for a broker addressed by IP on a closed network only


@dataclass(frozen=True)
class UplinkConfig:
    enabled: bool
    host: str
    port: int
    protocol: str
    client_id: str
    keepalive: int
    username: str | None
    password: Secret | None
    tls: TlsSettings | None
    inflight: int
    encoding: str


def _existing_file(sink: IssueSink, path: str, table: Mapping[str, Any], key: str) -> Path | None:
    value = take(sink, path, table, key, str, None)
    if value is None:
        return None
    p = Path(value)
    if not p.is_file():
        sink.error(join(path, key), f"file not found: {value}")
    return p


def _parse_tls(sink: IssueSink, table: Mapping[str, Any], env: Mapping[str, str]) -> TlsSettings:
    path = "uplink.tls"
    check_keys(
        sink,
        path,
        table,
        {"ca_file", "cert_file", "key_file", "insecure"} | allowed_secret_keys("key_password"),
    )
    ca = _existing_file(sink, path, table, "ca_file")
    cert = _existing_file(sink, path, table, "cert_file")
    key = _existing_file(sink, path, table, "key_file")
    if (cert is None) != (key is None):
        sink.error(
            join(path, "key_file" if key is None else "cert_file"),
            "a client certificate needs both cert_file and key_file",
        )
    insecure = take(sink, path, table, "insecure", bool, False)
    return TlsSettings(
        ca, cert, key, read_secret(sink, path, table, "key_password", env), bool(insecure)
    )


def parse_uplink(
    sink: IssueSink, table: Mapping[str, Any], gw: GatewaySettings, env: Mapping[str, str]
) -> UplinkConfig:
    path = "uplink"
    check_keys(
        sink,
        path,
        table,
        {
            "enabled",
            "host",
            "port",
            "protocol",
            "client_id",
            "keepalive",
            "username",
            "tls",
            "inflight",
            "encoding",
        }
        | allowed_secret_keys("password"),
    )
    enabled = take(sink, path, table, "enabled", bool, True)
    host = take(sink, path, table, "host", str, "localhost")
    tls_table = take(sink, path, table, "tls", dict, None)
    tls = _parse_tls(sink, tls_table, env) if tls_table is not None else None
    port = take(sink, path, table, "port", int, 8883 if tls else 1883)
    if port is not None and not 1 <= port <= 65535:
        sink.error(join(path, "port"), "must be 1..65535")
    protocol = take(sink, path, table, "protocol", str, "5")
    if protocol not in _PROTOCOLS:
        sink.error(join(path, "protocol"), f'must be "3.1.1" or "5", got {protocol!r}')
    client_id = take(sink, path, table, "client_id", str, f"gridgate-{gw.site}-{gw.gateway_id}")
    if isinstance(client_id, str) and not 1 <= len(client_id) <= 64:
        sink.error(join(path, "client_id"), "must be 1-64 characters")
    keepalive = take(sink, path, table, "keepalive", int, 30)
    if keepalive is not None and not 5 <= keepalive <= 3600:
        sink.error(join(path, "keepalive"), "must be between 5 and 3600 seconds")
    username = take(sink, path, table, "username", str, None)
    password = read_secret(sink, path, table, "password", env)
    if password is not None and username is None:
        sink.error(join(path, "username"), "a password is configured but no username")
    inflight = take(sink, path, table, "inflight", int, 20)
    if inflight is not None and not 1 <= inflight <= 1000:
        sink.error(join(path, "inflight"), "must be between 1 and 1000 messages")
    encoding = take(sink, path, table, "encoding", str, "json")
    if encoding not in _ENCODINGS:
        sink.error(join(path, "encoding"), f"must be one of {', '.join(_ENCODINGS)}")
    return UplinkConfig(
        bool(enabled),
        host or "",
        port or 0,
        protocol or "5",
        client_id or "",
        keepalive or 30,
        username,
        password,
        tls,
        inflight or 20,
        encoding or "json",
    )


def _parse_section(given: SectionInput) -> UplinkConfig:
    return parse_uplink(given.sink, given.table("uplink"), given.gateway, given.env)


# Validated even without an [uplink] table: its defaults (TLS port, QoS) must still check out.
SECTION = Section(
    name="uplink",
    tables=("uplink",),
    order=90,
    parse=_parse_section,
    daemon="gateway.uplink.daemon",
    parse_when_absent=True,
)
