"""``[plant.opcua]``: the PLC endpoint, its security, and the nodes to read, validated as a whole.

Example::

    [plant.opcua]
    endpoint = "opc.tcp://10.0.0.5:4840"
    security_policy = "Basic256Sha256"     # or Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss
    security_mode = "SignAndEncrypt"       # or Sign
    certificate = "/etc/gridgate/opcua/client.der"
    private_key = "/etc/gridgate/opcua/client.pem"
    trust_dir = "/etc/gridgate/opcua/trusted"   # server certificates (DER/PEM) we accept
    username = "gridgate"
    password_file = "/etc/gridgate/opcua.password"
    sampling_interval = 1.0                # s
    queue_size = 1
    deadband = 0.0                         # absolute, per node overridable

    [[plant.opcua.nodes]]
    name = "power"
    node_id = "ns=2;s=gas_turbine.power"

    [[plant.opcua.nodes]]
    name = "bearing_vibration"
    browse_path = "0:Objects/2:GasTurbine/2:bearing_vibration"
    unit = "mm/s"
    deadband = 0.05

``None`` security and the SHA-1 policies (Basic128Rsa15, Basic256) are refused unless
``allow_insecure = true``: they either send the password in the clear or rely on broken hashes.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.ua.uaerrors import UaStringParsingError

from drivers.opcua.policies import INSECURE_POLICIES, MODES, SECURE_POLICIES
from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.rules import (
    REQUIRED,
    existing_path,
    integer_ranged,
    one_of,
    ranged,
)
from gateway.config.secrets import Secret, allowed_secret_keys, read_secret
from gateway.config.text_rules import is_host, plain_text
from gateway.core.model import PointSpec

ACQUISITION = ("auto", "subscribe", "poll")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_QUALIFIED = re.compile(r"^(\d+:)?[^/]+$")

_TOP_KEYS = {
    "endpoint",
    "security_policy",
    "security_mode",
    "certificate",
    "private_key",
    "trust_dir",
    "application_uri",
    "username",
    "allow_insecure",
    "acquisition",
    "sampling_interval",
    "publishing_interval",
    "queue_size",
    "deadband",
    "timeout",
    "session_timeout",
    "reconnect_max",
    "nodes",
    *allowed_secret_keys("password"),
    *allowed_secret_keys("private_key_password"),
}
_NODE_KEYS = {"name", "node_id", "browse_path", "unit", "deadband", "low", "high"}

# Seconds, per key. 1e-300 passed as "> 0" (a sampling interval the server rounds to its fastest,
# a timeout that fails every request); 1e308 overflowed asyncua's millisecond conversions.
_SECONDS = {
    "sampling_interval": (0.01, 3600.0),  # also the polling period: 100 Hz .. once an hour
    "publishing_interval": (0.01, 3600.0),
    "timeout": (0.1, 60.0),  # per request; above a minute a dead PLC holds the loop
    "session_timeout": (1.0, 3600.0),  # how long the server keeps a session we lost
    "reconnect_max": (0.1, 3600.0),  # the reconnect backoff's cap
}
# A node's plausible range and deadband are in its unit (bar, degC, kW, kWh, rpm): a billion of
# any of them is past every plant tag (1e308 made the range check a no-op).
_VALUE_MAX = 1e9
_U = "in the node's unit"
_TEXT_MAX = 1024  # endpoint, application URI, user name: they reach log lines and the server


def _seconds(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: float
) -> float:
    return ranged(sink, path, table, key, default, *_SECONDS[key], unit="s")


def _endpoint(sink: IssueSink, path: str, table: Mapping[str, Any]) -> str | None:
    """``opc.tcp://HOST[:PORT][/PATH]``, plain text, with a real host name or IP address."""
    endpoint = plain_text(sink, path, table, "endpoint", REQUIRED, max_len=_TEXT_MAX)
    if endpoint is None:
        return None
    why = None
    if not endpoint.startswith("opc.tcp://"):
        why = f"must start with opc.tcp:// (got {endpoint!r})"
    else:
        url = urllib.parse.urlsplit(endpoint)
        try:
            url.port  # noqa: B018 - raises ValueError on a port that is no port
        except ValueError:
            why = f"the port must be a number in 0..65535 (got {endpoint!r})"
        host = url.hostname or ""
        if why is None and not is_host(host):
            why = f"must name a host name or an IP address after opc.tcp:// (got {endpoint!r})"
    if why is not None:
        sink.error(join(path, "endpoint"), why)
        return None
    return endpoint


@dataclass(frozen=True)
class NodeConfig:
    """One value to read: where it is on the server and what it is called in gridgate."""

    name: str
    node_id: str | None  # e.g. "ns=2;s=gas_turbine.power"
    browse_path: tuple[str, ...] | None  # qualified names from the root, e.g. ("0:Objects", ...)
    unit: str = ""
    deadband: float = 0.0
    low: float | None = None
    high: float | None = None

    @property
    def spec(self) -> PointSpec:
        return PointSpec(self.name, self.unit, self.low, self.high, self.deadband)

    @property
    def where(self) -> str:
        return self.node_id if self.node_id is not None else "/".join(self.browse_path or ())


@dataclass(frozen=True)
class SecurityConfig:
    policy: str  # one of SECURE_POLICIES or INSECURE_POLICIES
    mode: str  # one of MODES
    certificate: Path | None = None
    private_key: Path | None = None
    private_key_password: Secret | None = None
    trust_dir: Path | None = None
    application_uri: str | None = None  # default: the URI in the client certificate
    username: str | None = None
    password: Secret | None = None

    @property
    def enabled(self) -> bool:
        return self.policy != "None"


@dataclass(frozen=True)
class OpcUaConfig:
    endpoint: str
    security: SecurityConfig
    nodes: tuple[NodeConfig, ...]
    acquisition: str = "auto"  # subscribe, fall back to polling if the server cannot
    sampling_interval: float = 1.0  # s, also the polling period
    publishing_interval: float = 1.0  # s
    queue_size: int = 1
    timeout: float = 4.0  # s per request
    session_timeout: float = 60.0  # s: how long the server keeps a session we lost
    reconnect_max: float = 30.0  # s, backoff cap

    @property
    def points(self) -> tuple[PointSpec, ...]:
        return tuple(n.spec for n in self.nodes)


def parse_opcua(
    sink: IssueSink,
    table: Mapping[str, Any],
    path: str = "plant.opcua",
    env: Mapping[str, str] | None = None,
) -> OpcUaConfig | None:
    """Validate ``table`` (the ``[plant.opcua]`` table); report every problem into ``sink``."""
    before = len(sink.issues)
    check_keys(sink, path, table, _TOP_KEYS)
    endpoint = _endpoint(sink, path, table)
    security = _parse_security(sink, table, path, env)
    acquisition = one_of(sink, path, table, "acquisition", "auto", ACQUISITION)
    sampling = _seconds(sink, path, table, "sampling_interval", 1.0)
    publishing = _seconds(sink, path, table, "publishing_interval", sampling)
    queue_size = integer_ranged(sink, path, table, "queue_size", 1, 1, 10_000)
    default_deadband = ranged(sink, path, table, "deadband", 0.0, 0.0, _VALUE_MAX, unit=_U)
    timeout = _seconds(sink, path, table, "timeout", 4.0)
    session_timeout = _seconds(sink, path, table, "session_timeout", 60.0)
    reconnect_max = _seconds(sink, path, table, "reconnect_max", 30.0)
    nodes = _parse_nodes(sink, table, path, default_deadband)
    if len(sink.issues) > before or security is None or endpoint is None:
        return None
    return OpcUaConfig(
        endpoint=endpoint,
        security=security,
        nodes=nodes,
        acquisition=acquisition,
        sampling_interval=sampling,
        publishing_interval=publishing,
        queue_size=queue_size,
        timeout=timeout,
        session_timeout=session_timeout,
        reconnect_max=reconnect_max,
    )


def _parse_security(
    sink: IssueSink, table: Mapping[str, Any], path: str, env: Mapping[str, str] | None
) -> SecurityConfig | None:
    before = len(sink.issues)
    policies = SECURE_POLICIES + INSECURE_POLICIES
    policy = one_of(sink, path, table, "security_policy", "Basic256Sha256", policies)
    checked = len(sink.issues)
    mode = one_of(sink, path, table, "security_mode", "SignAndEncrypt", MODES)
    mode_known = len(sink.issues) == checked
    allow_insecure = take(sink, path, table, "allow_insecure", bool, False)
    if policy in INSECURE_POLICIES and not allow_insecure:
        why = "sends data and password unprotected" if policy == "None" else "uses SHA-1"
        sink.error(
            join(path, "security_policy"),
            f"{policy} {why}; use {', '.join(SECURE_POLICIES)} "
            "or set allow_insecure = true if the PLC can do nothing better",
        )
    if mode_known and (policy == "None") != (mode == "None"):
        sink.error(
            join(path, "security_mode"),
            f"security_mode {mode} does not fit security_policy {policy} "
            "(None goes with None, every other policy with Sign or SignAndEncrypt)",
        )
    certificate = existing_path(sink, path, table, "certificate")
    private_key = existing_path(sink, path, table, "private_key")
    trust_dir = existing_path(sink, path, table, "trust_dir", directory=True)
    key_password = read_secret(sink, path, table, "private_key_password", env)
    application_uri = plain_text(sink, path, table, "application_uri", None, max_len=_TEXT_MAX)
    if policy != "None":
        for key, value in (("certificate", certificate), ("private_key", private_key)):
            if value is None and key not in table:
                sink.error(join(path, key), f"required with security_policy {policy}")
        if trust_dir is None and "trust_dir" not in table and not allow_insecure:
            sink.error(
                join(path, "trust_dir"),
                "required: a directory of trusted server certificates "
                "(or allow_insecure = true to accept any server certificate)",
            )
    username = plain_text(sink, path, table, "username", None, max_len=_TEXT_MAX)
    password = read_secret(sink, path, table, "password", env)
    has_password = any(k in table for k in ("password_file", "password_credential"))
    if username is not None and not has_password:
        sink.error(join(path, "username"), "needs password_file or password_credential")
    if has_password and "username" not in table:
        sink.error(join(path, "password_file"), "a password without a username")
    if len(sink.issues) > before:
        return None
    return SecurityConfig(
        policy=policy,
        mode=mode,
        certificate=certificate,
        private_key=private_key,
        private_key_password=key_password,
        trust_dir=trust_dir,
        application_uri=application_uri,
        username=username,
        password=password,
    )


def _parse_nodes(
    sink: IssueSink, table: Mapping[str, Any], path: str, default_deadband: float
) -> tuple[NodeConfig, ...]:
    raw = take(sink, path, table, "nodes", list, None)
    if raw is None:
        if "nodes" not in table:
            sink.error(join(path, "nodes"), "at least one [[plant.opcua.nodes]] is required")
        return ()
    if not raw:
        sink.error(join(path, "nodes"), "at least one node is required")
    nodes: list[NodeConfig] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(raw):
        where = join(join(path, "nodes"), i)
        if not isinstance(item, dict):
            sink.error(where, "expected a table")
            continue
        check_keys(sink, where, item, _NODE_KEYS)
        name = take(sink, where, item, "name", str)
        if isinstance(name, str):
            if not _NAME.fullmatch(name):  # match() lets "x\n" through: $ matches before it
                sink.error(join(where, "name"), f"{name!r}: use letters, digits, _ . -")
            elif name in seen:
                sink.error(join(where, "name"), f"{name!r} is already used by {seen[name]}")
            seen[name] = where
        node_id = take(sink, where, item, "node_id", str, None)
        browse = take(sink, where, item, "browse_path", str, None)
        if (node_id is None) == (browse is None):
            sink.error(where, "set exactly one of node_id and browse_path")
        if node_id is not None:
            try:
                ua.NodeId.from_string(node_id)
            except (ValueError, UaStringParsingError) as exc:
                sink.error(join(where, "node_id"), f"{node_id!r} is not a node id: {exc}")
        parts: tuple[str, ...] | None = None
        if browse is not None:
            parts = tuple(p for p in browse.strip("/").split("/"))
            if not parts or not all(p and _QUALIFIED.match(p) for p in parts):
                sink.error(
                    join(where, "browse_path"),
                    f"{browse!r}: expected qualified names like 0:Objects/2:Plant/2:power",
                )
        unit = take(sink, where, item, "unit", str, "")
        deadband = ranged(sink, where, item, "deadband", default_deadband, 0.0, _VALUE_MAX, unit=_U)
        low = ranged(sink, where, item, "low", None, -_VALUE_MAX, _VALUE_MAX, unit=_U)
        high = ranged(sink, where, item, "high", None, -_VALUE_MAX, _VALUE_MAX, unit=_U)
        if low is not None and high is not None and low >= high:
            sink.error(join(where, "low"), f"low ({low}) must be below high ({high})")
        if isinstance(name, str):
            nodes.append(NodeConfig(name, node_id, parts, unit, deadband, low, high))
    return tuple(nodes)


__all__ = [
    "ACQUISITION",
    "INSECURE_POLICIES",
    "MODES",
    "SECURE_POLICIES",
    "NodeConfig",
    "OpcUaConfig",
    "SecurityConfig",
    "parse_opcua",
]
