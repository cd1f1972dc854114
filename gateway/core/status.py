"""Per-daemon status files that ``gridgate status`` reads without talking to the daemons.

A file per daemon in the runtime directory (tmpfs under systemd: rewriting a file every few
seconds must not wear out an SD card), replaced atomically, so a reader never sees half a file and
a crashed daemon leaves its last state (with its pid, so the reader can tell it died).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

_DIR_MODE = 0o700
_FILE_MODE = 0o600


def status_dir(runtime_dir: Path) -> Path:
    return runtime_dir / "status"


def write_status(runtime_dir: Path, daemon: str, body: dict[str, Any]) -> None:
    """Replace the daemon's status file: 0600 in a 0700 directory, whatever the umask."""
    d = status_dir(runtime_dir)
    d.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    final = d / f"{daemon}.json"
    tmp = d / f".{daemon}.json.{os.getpid()}"
    doc = {"daemon": daemon, "pid": os.getpid(), "updated": time.time(), **body}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _FILE_MODE)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(doc, sort_keys=True))
    tmp.replace(final)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user (the daemon's own account)
        return True
    return True


def read_status(runtime_dir: Path) -> dict[str, dict[str, Any]]:
    """Every daemon's last status; a 'running' daemon whose process is gone is reported 'dead'."""
    out: dict[str, dict[str, Any]] = {}
    d = status_dir(runtime_dir)
    if not d.is_dir():
        return out
    for f in sorted(d.glob("*.json")):
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            out[f.stem] = {"daemon": f.stem, "state": "unreadable", "error": str(exc)}
            continue
        if doc.get("state") == "running" and not _alive(int(doc.get("pid", 0))):
            doc["state"] = "dead"
        out[f.stem] = doc
    return out
