"""A reload that answers: SIGHUP to a running daemon, then wait for what it did with it.

A SIGHUP carries no answer, so ``systemctl reload`` (``ExecReload=``) and a technician's shell
would report success for a config the daemon refused. Each daemon process therefore writes the
outcome of every reload attempt to ``<runtime_dir>/reload/<which>.json`` (numbered per process),
and :func:`request_reload` signals and waits for the next outcome, so ``gridgate reload`` can
exit non-zero and systemd can mark the reload job failed while the old config keeps running.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_DIR_MODE = 0o700
_FILE_MODE = 0o600


@dataclass(frozen=True)
class ReloadOutcome:
    pid: int
    attempt: int  # 1, 2 ... per daemon process
    applied: bool
    reason: str  # why it was refused or failed; "" when applied


def _path(runtime_dir: Path, which: str) -> Path:
    return runtime_dir / "reload" / f"{which}.json"


def write_outcome(runtime_dir: Path, which: str, outcome: ReloadOutcome) -> None:
    """Replace the outcome file atomically (a reader never sees half of it)."""
    d = runtime_dir / "reload"
    d.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    tmp = d / f".{which}.json.{os.getpid()}"
    body = {
        "pid": outcome.pid,
        "attempt": outcome.attempt,
        "applied": outcome.applied,
        "reason": outcome.reason,
    }
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _FILE_MODE)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(body))
    tmp.replace(_path(runtime_dir, which))


def read_outcome(runtime_dir: Path, which: str) -> ReloadOutcome | None:
    try:
        doc = json.loads(_path(runtime_dir, which).read_text())
        return ReloadOutcome(
            int(doc["pid"]), int(doc["attempt"]), bool(doc["applied"]), str(doc["reason"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none yet, or a file this version cannot read: as good as none


def request_reload(runtime_dir: Path, which: str, pid: int, timeout: float) -> ReloadOutcome:
    """SIGHUP ``pid`` and wait for its answer.

    Raises ProcessLookupError when ``pid`` does not exist or exits meanwhile, TimeoutError when
    the daemon does not answer within ``timeout`` seconds (still waiting for its spool, say).
    """
    before = read_outcome(runtime_dir, which)
    seen = before.attempt if before is not None and before.pid == pid else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = read_outcome(runtime_dir, which)
        if now is not None and now.pid == pid and now.attempt > seen:
            return now
        os.kill(pid, 0)  # ProcessLookupError: it exited (neither config could start)
        time.sleep(0.1)
    raise TimeoutError(f"{which} (pid {pid}) gave no answer to the reload within {timeout:g} s")
