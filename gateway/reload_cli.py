"""``gridgate reload DAEMON``: what ``ExecReload=`` runs, and what a technician types.

The config is checked here first, so a broken file is refused with its file, key and reason
(exit 78) before the daemon is disturbed; otherwise the daemon is signalled and its own answer
decides the exit status (it may still refuse: a state directory it cannot use, say).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.config import load_or_report
from gateway.core.reload_request import request_reload
from gateway.core.runtime import EX_CONFIG
from gateway.core.status import read_status

EX_NOT_RUNNING = 3  # as `gridgate status` and LSB's "program is not running"


def _running_pid(runtime_dir: Path, daemon: str) -> int | None:
    """The pid from the daemon's status file (any of them for ``all``: one process)."""
    for name, info in read_status(runtime_dir).items():
        if (daemon in ("all", name)) and info.get("state") == "running":
            return int(info["pid"])
    return None


def reload_daemon(config_path: Path, daemon: str, pid: int | None, timeout: float) -> int:
    # Secrets are not read here: under systemd only the uplink's main process has them, and
    # the daemon checks them itself when it loads the file.
    config = load_or_report(config_path, read_secrets=False)
    if config is None:
        print("reload refused, keeping the running config", file=sys.stderr)
        return EX_CONFIG
    runtime_dir = config.gateway.runtime_dir
    pid = pid if pid is not None else _running_pid(runtime_dir, daemon)
    if pid is None:
        print(f"{daemon}: not running (no status in {runtime_dir})", file=sys.stderr)
        return EX_NOT_RUNNING
    try:
        outcome = request_reload(runtime_dir, daemon, pid, timeout)
    except ProcessLookupError:
        print(f"{daemon}: not running (pid {pid})", file=sys.stderr)
        return EX_NOT_RUNNING
    except PermissionError:
        print(f"{daemon}: pid {pid} belongs to another user: run as root", file=sys.stderr)
        return 1
    except TimeoutError as exc:
        print(f"{exc}: see the daemon's log", file=sys.stderr)
        return 1
    if outcome.applied:
        print(f"{daemon}: reloaded {config_path}")
        return 0
    print(
        f"{daemon}: reload refused, keeping the running config: {outcome.reason}", file=sys.stderr
    )
    return 1
