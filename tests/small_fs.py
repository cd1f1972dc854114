"""A small file system that really fills up: the gateway's state partition in miniature.

A tmpfs of a few megabytes mounted for one test (root only; the test is skipped with the reason
elsewhere), and a ballast file that fills it and is deleted to give the space back.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str = "size=2m") -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(fs: Path) -> Path:
    """Write a ballast file until the file system is full; return it (delete it to free space)."""
    ballast = fs / "ballast"
    with ballast.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\1" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return ballast
