"""gridgate status and gridgate points: what the running daemons say about themselves.

Both read the status files the daemons write into the runtime directory (gateway.core.status)
and never talk to a daemon or a device, so they work while a daemon hangs. When the config does
not load, its problems are printed and the runtime directory is read all the same (the one given
with --runtime-dir, else the packaged /run/gridgate), then the exit status is 78.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Config, load_or_report
from gateway.core.errors import GatewayError
from gateway.core.runtime import EX_CONFIG
from gateway.core.status import read_status
from gateway.spool.store import Spool
from gateway.watch import DEFAULT_INTERVAL, interval, watch

EX_NOT_RUNNING = 3  # LSB's "program is not running", as gridgate reload
PACKAGED_RUNTIME_DIR = Path("/run/gridgate")
_NO_CONFIG = "the config did not load (gridgate check-config shows why)"

_STATUS_DESCRIPTION = """\
Per daemon: running or not running (no status file, stopped, or its process is gone), its last
poll and points good/bad; the spool's depth; the uplink's state. Read from the status files in
the runtime directory: the config's runtime_dir, or the one given with --runtime-dir; when the
config does not load, the packaged /run/gridgate."""

_STATUS_EPILOG = """\
exit status:
  0   every configured daemon is running
  3   a daemon is not running (or none has ever written its status)
  78  the config is invalid: its problems go to stderr, what the runtime directory
      shows is printed all the same

with --watch the exit status is 0 when Ctrl-C ends it."""

_POINTS_DESCRIPTION = """\
The last value, unit and quality (GOOD, UNCERTAIN, BAD) of every point of every device, as the
daemons last wrote them into their status files (every status_interval seconds)."""

_POINTS_EPILOG = """\
exit status:
  0   values shown
  1   no live values for the device (or any device)
  78  the config is invalid (the values found are printed all the same)

with --watch the exit status is 0 when Ctrl-C ends it; put DEVICE before --watch
(gridgate points head --watch) or give the interval (gridgate points --watch 2 head)."""


def _add_common(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--watch",
        nargs="?",
        const=DEFAULT_INTERVAL,
        default=None,
        type=interval,
        metavar="SECONDS",
        help=f"show the {what} again every SECONDS (default {DEFAULT_INTERVAL:g}) until Ctrl-C: "
        "in place on a terminal, one frame after another into a pipe",
    )
    p.add_argument(
        "--runtime-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="read the daemons' status files from DIR instead of the config's runtime_dir",
    )


def add_status_parser(sub: Any) -> None:
    s = sub.add_parser(
        "status",
        help="state of every daemon, spool depth, uplink state (exit 0 running, 3 down, 78 config)",
        description=_STATUS_DESCRIPTION,
        epilog=_STATUS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
    _add_common(s, "status")


def add_points_parser(sub: Any) -> None:
    p = sub.add_parser(
        "points",
        help="live values of every point, with quality (from the running daemons)",
        description=_POINTS_DESCRIPTION,
        epilog=_POINTS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("device", nargs="?", help="only this device (a meter's name)")
    _add_common(p, "values")


@dataclass(frozen=True)
class _Source:
    config: Config | None  # None: it did not load (its problems are on stderr)
    runtime_dir: Path
    why: str  # where the runtime directory came from, for the messages

    @property
    def exit_config(self) -> int | None:
        return EX_CONFIG if self.config is None else None


def _source(config_path: Path, runtime_dir: Path | None) -> _Source:
    config = load_or_report(config_path, read_secrets=False)
    if runtime_dir is not None:
        return _Source(config, runtime_dir, "given with --runtime-dir")
    if config is not None:
        return _Source(config, config.gateway.runtime_dir, f"runtime_dir of {config_path}")
    return _Source(
        None,
        PACKAGED_RUNTIME_DIR,
        "the packaged default, as the config did not load; --runtime-dir DIR reads another",
    )


def _age(ts: float | None) -> str:
    if not ts:
        return "never"
    return f"{time.time() - ts:.1f} s ago"


def _spool(config: Config) -> dict[str, Any]:
    spool: dict[str, Any] = {"path": str(config.spool.path)}
    if not config.spool.path.exists():
        spool["depth"] = None
        return spool
    try:
        with Spool(config.spool.path, max_bytes=config.spool.max_bytes) as sp:
            st = sp.stats()
    except GatewayError as exc:
        spool["error"] = str(exc)
        return spool
    spool.update(
        depth=st.depth,
        bytes=st.bytes,
        max_bytes=st.max_bytes,
        dropped=st.dropped,
        rejected=st.rejected,
        oldest_ts=st.oldest_ts,
        alarm=st.alarm_active,
    )
    return spool


def _daemons(src: _Source) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every daemon to show (configured first, then any other with a status file) and the
    names whose state decides the exit status (the configured ones, or all when unknown)."""
    found = read_status(src.runtime_dir)
    configured = list(src.config.daemons()) if src.config is not None else []
    shown: dict[str, dict[str, Any]] = {}
    for name in configured:
        shown[name] = found.get(name, {"daemon": name, "state": "not running"})
    for name, doc in found.items():
        shown.setdefault(name, doc)
    return shown, (configured if src.config is not None else list(found))


def _state_line(name: str, info: dict[str, Any], src: _Source) -> str:
    state = info.get("state")
    pid = info.get("pid")
    if state == "running":
        return f"{name}: running (pid {pid}, updated {_age(info.get('updated'))})"
    if state == "dead":
        return f"{name}: not running (pid {pid} is gone; last status {_age(info.get('updated'))})"
    if state == "stopped":
        return f"{name}: not running (stopped {_age(info.get('updated'))})"
    if state == "unreadable":
        return f"{name}: not running? its status file is unreadable: {info.get('error')}"
    if state == "not running":
        return f"{name}: not running (no status in {src.runtime_dir})"
    return f"{name}: not running ({state})"


def _print_spool(spool: dict[str, Any]) -> None:
    depth = spool.get("depth")
    if depth is None:
        print(f"spool: {spool.get('error', 'not created yet')} ({spool['path']})")
    else:
        print(
            f"spool: {depth} row(s), {spool['bytes']}/{spool['max_bytes']} bytes, "
            f"dropped {spool['dropped']}, rejected {spool['rejected']}, "
            f"oldest {_age(spool.get('oldest_ts'))}"
        )


def _status_frame(src: _Source, as_json: bool) -> int:
    shown, judged = _daemons(src)
    down = [n for n in judged if shown[n].get("state") != "running"]
    code = src.exit_config or (EX_NOT_RUNNING if down or not judged else 0)
    spool = _spool(src.config) if src.config is not None else None
    if as_json:
        doc = {
            "daemons": shown,
            "spool": spool,
            "runtime_dir": str(src.runtime_dir),
            "config_ok": src.config is not None,
            "not_running": down,
            "exit": code,
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
        return code
    if not shown:
        print(f"no daemon is running: no status files in {src.runtime_dir} ({src.why})")
    for name, info in shown.items():
        extra = "" if name in judged else " [not in the config]"
        print(_state_line(name, info, src) + extra)
        if info.get("state") == "running":
            for line in info.get("lines", []):
                print(f"  {line}")
    if spool is not None:
        _print_spool(spool)
    else:
        print(f"spool: unknown: {_NO_CONFIG}; status read from {src.runtime_dir}")
    return code


def _points_frame(src: _Source, device: str | None) -> int:
    if src.config is None:  # said in the frame too: --watch clears the problems off the screen
        print(f"({_NO_CONFIG}; values read from {src.runtime_dir})")
    shown = 0
    for name, st in read_status(src.runtime_dir).items():
        gone = "" if st.get("state") == "running" else f" [{name} not running: last values]"
        for dev, info in st.get("meters", {}).items():
            if device is not None and dev != device:
                continue
            shown += 1
            last = _age(info.get("last_poll"))
            print(f"{name} / {dev} ({info.get('state')}, last poll {last}){gone}")
            for point, (value, quality, unit) in info.get("values", {}).items():
                shown_value = "-" if value is None else f"{value:.6g}"
                print(f"  {point:<28} {shown_value:>14} {unit:<5} {quality}")
    if not shown:
        what = f"device {device!r}" if device else "any device"
        print(
            f"no live values for {what} in {src.runtime_dir} ({src.why}): "
            "is a daemon running with this config?",
            file=sys.stderr,
        )
        return src.exit_config or 1
    return src.exit_config or 0


def status(args: argparse.Namespace) -> int:
    src = _source(args.config, args.runtime_dir)
    if args.watch is None:
        return _status_frame(src, args.json)
    return watch(lambda: _status_frame(src, args.json), args.watch, "gridgate status")


def points(args: argparse.Namespace) -> int:
    src = _source(args.config, args.runtime_dir)
    if args.watch is None:
        return _points_frame(src, args.device)
    return watch(lambda: _points_frame(src, args.device), args.watch, "gridgate points")
