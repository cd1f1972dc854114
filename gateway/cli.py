"""The ``gridgate`` command: run daemons, check a config, show status, run the demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivers.modbus import scan_cli as modbus_scan_cli
from drivers.opcua import scan_cli
from gateway import __version__
from gateway.bms import replay_cli
from gateway.config import DEFAULT_PATH, load_or_report
from gateway.core.errors import GatewayError
from gateway.core.runtime import EX_CONFIG
from gateway.core.status import read_status
from gateway.grid import loadflow_cli
from gateway.reload_cli import reload_daemon
from gateway.spool.store import Spool

DAEMON_CHOICES = ("grid", "bms", "plant", "uplink", "all")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridgate", description=__doc__)
    p.add_argument("--version", action="version", version=f"gridgate {__version__}")
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_PATH,
        help=f"main config file (default {DEFAULT_PATH})",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a daemon (or all configured daemons in one process)")
    r.add_argument("daemon", choices=DAEMON_CHOICES)

    sub.add_parser(
        "check-config", help="validate the config and its drop-ins, then exit (78 on errors)"
    )

    rl = sub.add_parser(
        "reload",
        help="make a running daemon apply the config again and say whether it did "
        "(0 applied, 1 refused or failed, 3 not running, 78 config invalid)",
    )
    rl.add_argument("daemon", choices=DAEMON_CHOICES)
    rl.add_argument(
        "--pid", type=int, default=None, help="the daemon's process (default: from its status)"
    )
    rl.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for its answer (default 60)"
    )

    s = sub.add_parser("status", help="state of every daemon, spool depth, uplink state")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    loadflow_cli.add_parser(sub)
    replay_cli.add_parser(sub)

    scan = sub.add_parser("scan", help="probe a device so a technician can write its config")
    protocols = scan.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    scan_cli.add_parser(protocols)
    modbus_scan_cli.add_parser(protocols)

    pts = sub.add_parser("points", help="live values of every point (from the running daemons)")
    pts.add_argument("device", nargs="?", help="only this device")

    d = sub.add_parser(
        "demo",
        help="the whole gateway on a simulated bench: feeder, battery rack and gas turbine "
        "simulators -> daemons -> spool -> uplink -> a private broker",
    )
    d.add_argument(
        "--duration", type=float, default=None, help="stop after SECONDS (default: until Ctrl-C)"
    )
    d.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="simulated feeder seconds per wall second (default 60; the plant runs at 10x, "
        "the rack in real time)",
    )
    d.add_argument(
        "--only",
        type=_daemon_list,
        default=DEMO_DAEMONS,
        metavar="LIST",
        help="the field daemons to run, comma-separated (default grid,bms,plant)",
    )
    d.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the config, spool and logs to DIR and keep them (default: a temporary "
        "directory, deleted at the end)",
    )
    _config_after_command(p)
    return p


DEMO_DAEMONS = ("grid", "bms", "plant")


def _daemon_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in DEMO_DAEMONS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a comma-separated list of {', '.join(DEMO_DAEMONS)}"
        )
    return names


def _config_after_command(parser: argparse.ArgumentParser) -> None:
    """Accept ``-c FILE`` after every command too (``gridgate run grid -c FILE``), as units,
    docs and technicians write it. SUPPRESS keeps the global value when it is not repeated."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in action.choices.values():
            if "-c" not in child._option_string_actions:
                child.add_argument(
                    "-c",
                    "--config",
                    type=Path,
                    default=argparse.SUPPRESS,
                    help=f"main config file (default {DEFAULT_PATH})",
                )
            _config_after_command(child)


def _check_config(path: Path) -> int:
    config = load_or_report(path)
    if config is None:
        return EX_CONFIG
    files = ", ".join(str(f) for f in config.files)
    print(f"config OK: {files}")
    print(f"daemons: {', '.join(config.daemons()) or 'none'}")
    for section in config.registered:
        parsed = config.sections.get(section.name)
        if parsed is not None and section.describe is not None:
            for line in section.describe(parsed):
                print(line)
    return 0


def _age(ts: float | None) -> str:
    if not ts:
        return "never"
    return f"{time.time() - ts:.1f} s ago"


def _status(path: Path, as_json: bool) -> int:
    config = load_or_report(path, read_secrets=False)
    if config is None:
        return EX_CONFIG
    daemons = read_status(config.gateway.runtime_dir)
    spool: dict[str, Any] = {"path": str(config.spool.path)}
    if config.spool.path.exists():
        try:
            with Spool(config.spool.path, max_bytes=config.spool.max_bytes) as sp:
                st = sp.stats()
            spool.update(
                depth=st.depth,
                bytes=st.bytes,
                max_bytes=st.max_bytes,
                dropped=st.dropped,
                rejected=st.rejected,
                oldest_ts=st.oldest_ts,
                alarm=st.alarm_active,
            )
        except GatewayError as exc:
            spool["error"] = str(exc)
    else:
        spool["depth"] = None
    if as_json:
        print(json.dumps({"daemons": daemons, "spool": spool}, indent=2, sort_keys=True))
        return 0
    for name in config.daemons():
        info = daemons.get(name, {"state": "never started"})
        print(
            f"{name}: {info.get('state')}"
            + (
                f" (pid {info['pid']}, updated {_age(info.get('updated'))})"
                if "pid" in info
                else ""
            )
        )
        for line in info.get("lines", []):
            print(f"  {line}")
    depth = spool.get("depth")
    if depth is None:
        print(f"spool: {spool.get('error', 'not created yet')} ({spool['path']})")
    else:
        print(
            f"spool: {depth} row(s), {spool['bytes']}/{spool['max_bytes']} bytes, "
            f"dropped {spool['dropped']}, rejected {spool['rejected']}, "
            f"oldest {_age(spool.get('oldest_ts'))}"
        )
    return 0


def _points(path: Path, device: str | None) -> int:
    config = load_or_report(path, read_secrets=False)
    if config is None:
        return EX_CONFIG
    shown = 0
    for name, st in read_status(config.gateway.runtime_dir).items():
        for dev, info in st.get("meters", {}).items():
            if device is not None and dev != device:
                continue
            shown += 1
            print(f"{name} / {dev} ({info.get('state')}, last poll {_age(info.get('last_poll'))})")
            for point, (value, quality, unit) in info.get("values", {}).items():
                shown_value = "-" if value is None else f"{value:.6g}"
                print(f"  {point:<28} {shown_value:>14} {unit:<5} {quality}")
    if not shown:
        what = f"device {device!r}" if device else "any device"
        print(f"no live values for {what}: is a daemon running with this config?", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "status":
        return _status(args.config, args.json)
    if args.command == "reload":
        return reload_daemon(args.config, args.daemon, args.pid, args.timeout)
    if args.command == "loadflow":
        return loadflow_cli.run(args)
    if args.command == "replay":
        return replay_cli.run(args)
    if args.command == "scan":
        scanned: int = args.func(args)
        return scanned
    if args.command == "points":
        return _points(args.config, args.device)
    if args.command == "run":
        # start-up: asyncio and the supervisor are for daemons; status and check-config skip them.
        from gateway.core.runtime import run

        return run(args.config, args.daemon)
    if args.command == "demo":
        # start-up: the demo loads every simulator (pymodbus, asyncua, paho); only it needs them.
        from gateway.demo import run_demo

        code: int = run_demo(args.duration, args.speed, args.keep, args.only)
        return code
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
