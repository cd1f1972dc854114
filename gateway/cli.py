"""The gridgate command: run daemons, check a config, show status, run the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from drivers.modbus import scan_cli as modbus_scan_cli
from drivers.opcua import scan_cli
from gateway import __version__
from gateway.bms import replay_cli
from gateway.config import DEFAULT_PATH, load_or_report
from gateway.core.runtime import EX_CONFIG
from gateway.grid import loadflow_cli
from gateway.reload_cli import reload_daemon
from gateway.status_cli import add_points_parser, add_status_parser, points, status

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
    r.add_argument(
        "daemon", choices=DAEMON_CHOICES, help="which daemon (all: every configured one)"
    )

    sub.add_parser(
        "check-config", help="validate the config and its drop-ins, then exit (78 on errors)"
    )

    rl = sub.add_parser(
        "reload",
        help="make a running daemon apply the config again and say whether it did "
        "(0 applied, 1 refused or failed, 3 not running, 78 config invalid)",
    )
    rl.add_argument("daemon", choices=DAEMON_CHOICES, help="the daemon to reload (all: run all)")
    rl.add_argument(
        "--pid", type=int, default=None, help="the daemon's process (default: from its status)"
    )
    rl.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for its answer (default 60)"
    )

    add_status_parser(sub)

    loadflow_cli.add_parser(sub)
    replay_cli.add_parser(sub)

    scan = sub.add_parser("scan", help="probe a device so a technician can write its config")
    protocols = scan.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    scan_cli.add_parser(protocols)
    modbus_scan_cli.add_parser(protocols)

    add_points_parser(sub)

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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "status":
        return status(args)
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
        return points(args)
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
