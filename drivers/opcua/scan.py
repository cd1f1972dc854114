"""``gridgate scan opcua URL``: browse a server and print what a config needs.

For every variable under ``Objects`` (the server's own ns=0 diagnostics are skipped) one line:
node id, browse path, data type, value and status, so a technician can copy ``node_id`` or
``browse_path`` into ``[[plant.opcua.nodes]]``. Without security options the scan connects
with security None and no login (it only reads); a password is never sent unprotected unless
``--allow-insecure`` says so.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import TextIO

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.uaerrors import UaError

from drivers.opcua.config import INSECURE_POLICIES, SecurityConfig
from drivers.opcua.errors import OpcUaError, UntrustedServerError
from drivers.opcua.quality import status_name
from drivers.opcua.security import configure
from gateway.config.secrets import Secret

EX_OK, EX_USAGE, EX_UNAVAILABLE, EX_NOPERM = 0, 64, 69, 77


@dataclass(frozen=True)
class Row:
    node_id: str
    browse_path: str
    data_type: str
    value: str
    status: str


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    mode = args.mode or ("None" if args.policy == "None" else "SignAndEncrypt")
    if args.policy in INSECURE_POLICIES and args.policy != "None" and not args.allow_insecure:
        print(f"scan opcua: {args.policy} uses SHA-1; add --allow-insecure", file=sys.stderr)
        return EX_USAGE
    if args.user and args.policy == "None" and not args.allow_insecure:
        print("scan opcua: a password over security None goes in the clear; use --policy "
              "or --allow-insecure", file=sys.stderr)  # fmt: skip
        return EX_USAGE
    if args.policy != "None" and (args.cert is None or args.key is None):
        print(f"scan opcua: --policy {args.policy} needs --cert and --key", file=sys.stderr)
        return EX_USAGE
    password = None
    if args.password_file is not None:
        password = Secret(args.password_file.read_text(encoding="utf-8").rstrip("\r\n"))
    security = SecurityConfig(
        policy=args.policy,
        mode=mode,
        certificate=args.cert,
        private_key=args.key,
        trust_dir=args.trust_dir,
        username=args.user,
        password=password,
    )
    try:
        rows = asyncio.run(scan(args.url, security, args.depth, args.max_nodes, args.timeout))
    except UntrustedServerError as exc:
        print(f"scan opcua: {exc}", file=sys.stderr)
        return EX_NOPERM
    except OpcUaError as exc:
        print(f"scan opcua: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    print_rows(rows, stream)
    return EX_OK


async def scan(
    url: str, security: SecurityConfig, depth: int = 6, max_nodes: int = 2000, timeout: float = 4.0
) -> list[Row]:
    client = Client(url, timeout=timeout)
    client.name = client.description = "gridgate scan"
    validator = None
    try:
        validator = await configure(client, security)
        await asyncio.wait_for(client.connect(), timeout * 2)
    except UaError as exc:
        reason = validator.refusal if validator and validator.refusal else str(exc)
        if validator and validator.refusal:
            raise UntrustedServerError(f"{url}: refused: {reason}") from exc
        raise OpcUaError(f"{url}: {type(exc).__name__}: {exc}") from exc
    except (OSError, TimeoutError, ConnectionError, ValueError) as exc:
        raise OpcUaError(f"{url}: {type(exc).__name__}: {exc}") from exc
    try:
        rows: list[Row] = []
        await _walk(client, client.nodes.objects, "0:Objects", depth, max_nodes, rows)
        return rows
    except (OSError, TimeoutError, ConnectionError, UaError) as exc:
        raise OpcUaError(f"{url}: browsing failed: {type(exc).__name__}: {exc}") from exc
    finally:
        try:
            await asyncio.wait_for(client.disconnect(), timeout)
        except (OSError, TimeoutError, ConnectionError, UaError):
            client.disconnect_socket()


async def _walk(
    client: Client, node: Node, path: str, depth: int, max_nodes: int, rows: list[Row]
) -> None:
    if depth < 0 or len(rows) >= max_nodes:
        return
    for child in await node.get_children():
        if len(rows) >= max_nodes:
            return
        if child.nodeid.NamespaceIndex == 0:
            continue  # the server's own diagnostics: thousands of nodes nobody configures
        name = await child.read_browse_name()
        child_path = f"{path}/{name.NamespaceIndex}:{name.Name}"
        node_class = await child.read_node_class()
        if node_class == ua.NodeClass.Variable:
            rows.append(await _row(client, child, child_path))
        await _walk(client, child, child_path, depth - 1, max_nodes, rows)


async def _row(client: Client, node: Node, path: str) -> Row:
    data_value = await node.read_data_value(raise_on_bad_status=False)
    try:
        type_node = client.get_node(await node.read_data_type())
        type_name = str((await type_node.read_browse_name()).Name)
    except UaError:
        type_name = "?"
    value = data_value.Value.Value if data_value.Value is not None else None
    text = f"{value:.6g}" if isinstance(value, float) else repr(value)
    return Row(
        node.nodeid.to_string(), path, str(type_name), text, status_name(data_value.StatusCode)
    )


def print_rows(rows: list[Row], out: TextIO) -> None:
    if not rows:
        print("no variables found below Objects", file=out)
        return
    widths = [
        max(len(h), *(len(getattr(r, f)) for r in rows))
        for h, f in (
            ("NODE ID", "node_id"),
            ("BROWSE PATH", "browse_path"),
            ("TYPE", "data_type"),
            ("VALUE", "value"),
        )
    ]
    header = ("NODE ID", "BROWSE PATH", "TYPE", "VALUE", "STATUS")
    print(
        "  ".join(h.ljust(w) for h, w in zip(header, [*widths, 0], strict=True)).rstrip(), file=out
    )
    for r in rows:
        cells = (r.node_id, r.browse_path, r.data_type, r.value, r.status)
        print(
            "  ".join(c.ljust(w) for c, w in zip(cells, [*widths, 0], strict=True)).rstrip(),
            file=out,
        )
    print(f"{len(rows)} variables; use node_id or browse_path in [[plant.opcua.nodes]]", file=out)


__all__ = ["Row", "print_rows", "run", "scan"]
