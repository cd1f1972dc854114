"""``[uplink]``: the MQTT session upstream.

TLS is on unless the config says ``tls = false`` in so many words: no ``[uplink.tls]`` table, an
empty one or ``tls = true`` all mean TLS with the system trust store verifying the broker;
``ca_file`` replaces the store with one CA. With ``tls = false`` a password would cross the network
in clear text, so it is refused unless ``allow_plaintext_password = true`` says that is intended.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.registry import Section, SectionInput
from gateway.config.root import GatewaySettings
from gateway.config.rules import existing_path, integer_ranged, one_of
from gateway.config.secrets import Secret, allowed_secret_keys, read_secret
from gateway.config.text_rules import host_name, plain_text

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
    tls: TlsSettings | None  # None only when the config says tls = false
    allow_plaintext_password: bool
    inflight: int
    encoding: str


def _parse_tls(
    sink: IssueSink, table: Mapping[str, Any], env: Mapping[str, str], read_secrets: bool
) -> TlsSettings:
    path = "uplink.tls"
    check_keys(
        sink,
        path,
        table,
        {"ca_file", "cert_file", "key_file", "insecure"} | allowed_secret_keys("key_password"),
    )
    ca = existing_path(sink, path, table, "ca_file")
    cert = existing_path(sink, path, table, "cert_file")
    key = existing_path(sink, path, table, "key_file")
    if ("cert_file" in table) != ("key_file" in table):
        sink.error(
            join(path, "key_file" if "key_file" not in table else "cert_file"),
            "a client certificate needs both cert_file and key_file",
        )
    insecure = take(sink, path, table, "insecure", bool, False)
    return TlsSettings(
        ca,
        cert,
        key,
        read_secret(sink, path, table, "key_password", env, read=read_secrets),
        bool(insecure),
    )


def parse_uplink(
    sink: IssueSink,
    table: Mapping[str, Any],
    gw: GatewaySettings,
    env: Mapping[str, str],
    read_secrets: bool = True,
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
            "allow_plaintext_password",
            "inflight",
            "encoding",
        }
        | allowed_secret_keys("password"),
    )
    enabled = take(sink, path, table, "enabled", bool, True)
    # A NUL cut the name short in the resolver; a newline forged a log line per reconnect.
    host = host_name(sink, path, table, "host", "localhost")
    # `tls = false` turns TLS off; `tls = true`, a [uplink.tls] table or nothing keeps it on.
    tls_given = take(sink, path, table, "tls", (bool, dict), True)
    tls_table: Mapping[str, Any] = tls_given if isinstance(tls_given, dict) else {}
    tls = _parse_tls(sink, tls_table, env, read_secrets) if tls_given is not False else None
    port = integer_ranged(sink, path, table, "port", 8883 if tls else 1883, 1, 65535)
    protocol = one_of(sink, path, table, "protocol", "5", _PROTOCOLS)
    # The broker logs the client id and shows it to its operators: 1-64 plain characters.
    client_id = plain_text(
        sink, path, table, "client_id", f"gridgate-{gw.site}-{gw.gateway_id}", max_len=64
    )
    keepalive = integer_ranged(sink, path, table, "keepalive", 30, 5, 3600, unit="seconds")
    username = plain_text(sink, path, table, "username", None, max_len=255)
    password = read_secret(sink, path, table, "password", env, read=read_secrets)
    if password is not None and "username" not in table:
        sink.error(join(path, "username"), "a password is configured but no username")
    plaintext_ok = take(sink, path, table, "allow_plaintext_password", bool, False)
    # Judged on the keys, not on whether the secret could be read here: check-config on a
    # laptop without the unit's credentials must still refuse a password sent in clear.
    password_set = bool(allowed_secret_keys("password") & table.keys())
    if tls is None and password_set and plaintext_ok is not True:
        sink.error(
            join(path, "tls"),
            "false sends the MQTT password in clear text: remove tls = false (TLS is the "
            "default), or set allow_plaintext_password = true on a closed network",
        )
    inflight = integer_ranged(sink, path, table, "inflight", 20, 1, 1000, unit="messages")
    encoding = one_of(sink, path, table, "encoding", "json", _ENCODINGS)
    return UplinkConfig(
        bool(enabled),
        host,
        port,
        protocol,
        client_id,
        keepalive,
        username,
        password,
        tls,
        plaintext_ok is True,
        inflight,
        encoding,
    )


def _parse_section(given: SectionInput) -> UplinkConfig:
    return parse_uplink(
        given.sink, given.table("uplink"), given.gateway, given.env, given.read_secrets
    )


def _describe(cfg: UplinkConfig) -> list[str]:
    """The broker line of ``gridgate check-config``: how the broker is reached and verified."""
    if not cfg.enabled:
        return ["  uplink: disabled"]
    if cfg.tls is None:
        secret = " and the password" if cfg.password is not None else ""
        how = f"PLAIN MQTT (tls = false): messages{secret} in clear text"
    elif cfg.tls.ca_file is not None:
        how = f"TLS, broker verified against {cfg.tls.ca_file}"
    else:
        how = "TLS, broker verified by the system trust store"
    if cfg.tls is not None and cfg.tls.insecure:
        how += " (host name not checked: insecure = true)"
    return [f"  uplink: {cfg.host}:{cfg.port}, {how}"]


# Validated even without an [uplink] table: its defaults (TLS port, QoS) must still check out.
SECTION = Section(
    name="uplink",
    tables=("uplink",),
    order=90,
    parse=_parse_section,
    daemon="gateway.uplink.daemon",
    parse_when_absent=True,
    describe=_describe,
)
