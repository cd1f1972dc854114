"""A full disk under the spool, end to end: the real daemons as processes, a real mosquitto, the
state directory on a small tmpfs filled with a ballast file that is deleted to "return space".

Issue 11: the WAL filled the partition, the uplink's ack() then crashed its loop and republished
the oldest rows on every restart, and a daemon started on a full disk exited 73 until systemd gave
up. Needs root for the tmpfs mount (skipped with the reason otherwise).
"""

from __future__ import annotations

import errno
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.bench import Bench

pytestmark = pytest.mark.hil


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (the gateway's state partition in miniature), unmounted afterwards."""
    where = tmp_path / "state"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(where)],
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
        chunk = b"\1" * 4096
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return ballast


def _docs(b: Bench, kind: str | None = None) -> list[dict]:
    assert b.upstream is not None
    return b.upstream.docs(kind)


def _windows(b: Bench) -> dict[str, list[float]]:
    """Per meter, the start of every summary window that arrived upstream (first arrivals)."""
    out: dict[str, list[float]] = {}
    for d in _docs(b, "summary"):
        starts = out.setdefault(d["body"]["device"], [])
        if d["body"]["start"] not in starts:
            starts.append(d["body"]["start"])
    return out


def test_start_on_a_full_disk_waits_then_runs(tmp_path: Path, small_fs: Path) -> None:
    bench = Bench(tmp_path)
    try:
        bench.broker.start()
        from gateway.sim.upstream import Upstream

        bench.upstream = Upstream(bench.broker.host, bench.broker.port)
        bench.upstream.start()
        bench.start_devices()
        bench.write_config()
        ballast = fill(small_fs)
        bench.start_daemon("uplink")
        bench.start_daemon("grid")
        time.sleep(6)
        for name in ("uplink", "grid"):
            proc = bench.procs[name]
            assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{bench.log(name)}"
            assert bench.log(name).count("spool not writable, waiting") == 1, bench.log(name)
        assert not _docs(bench, "summary")
        ballast.unlink()
        bench.wait_for("summaries once space returned", lambda: len(_docs(bench)) >= 3, 40)
        for name in ("uplink", "grid"):
            assert "writable again, starting" in bench.log(name)
            assert "Traceback" not in bench.log(name)
    finally:
        bench.stop()
