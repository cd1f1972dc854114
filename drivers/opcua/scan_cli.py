"""``gridgate scan opcua URL``: the arguments only. The scan itself (asyncua) is imported when it
runs, so building gridgate's command line stays cheap for every other command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from drivers.opcua.policies import INSECURE_POLICIES, SECURE_POLICIES


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``opcua`` on the ``scan`` command's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "opcua", help="browse an OPC UA server and print node ids, types and values"
    )
    p.add_argument("url", help="endpoint, e.g. opc.tcp://10.0.0.5:4840")
    p.add_argument(
        "--policy",
        choices=SECURE_POLICIES + INSECURE_POLICIES,
        default="None",
        help="security policy (default None: browsing only; anything else needs --cert/--key)",
    )
    p.add_argument(
        "--mode",
        choices=("None", "Sign", "SignAndEncrypt"),
        default=None,
        help="message security mode (default SignAndEncrypt with a policy, None without)",
    )
    p.add_argument("--cert", type=Path, help="client certificate")
    p.add_argument("--key", type=Path, help="client private key")
    p.add_argument("--trust-dir", type=Path, help="trusted server certificates")
    p.add_argument("--user", help="user name")
    p.add_argument("--password-file", type=Path, help="file holding the password")
    p.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow the SHA-1 policies, or a password over security None (in the clear)",
    )
    p.add_argument("--depth", type=int, default=6, help="browse depth below Objects")
    p.add_argument(
        "--max-nodes", type=int, default=2000, help="stop after this many nodes (default 2000)"
    )
    p.add_argument(
        "--timeout", type=float, default=4.0, help="seconds per request (default 4; connect: 2x)"
    )
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    # start-up: asyncua takes about a second to import; only `gridgate scan opcua` needs it.
    from drivers.opcua.scan import run

    return run(args)
