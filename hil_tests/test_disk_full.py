"""A full disk under the spool, end to end: the real daemons as processes, a real mosquitto, the
state directory on a small tmpfs filled with a ballast file that is deleted to "return space".

Issue 11: the WAL filled the partition, the uplink's ack() then crashed its loop and republished
the oldest rows on every restart, and a daemon started on a full disk exited 73 until systemd gave
up. Needs root for the tmpfs mount (skipped with the reason otherwise).
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.bench import Bench
from tests.small_fs import fill, mounted_tmpfs

pytestmark = pytest.mark.hil


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs as the state directory, unmounted afterwards."""
    with mounted_tmpfs(tmp_path / "state", "size=2m,mode=0700") as where:
        yield where


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


def test_disk_full_while_running_loses_nothing_and_resumes(tmp_path: Path, small_fs: Path) -> None:
    bench = Bench(tmp_path)
    try:
        bench.start()
        bench.wait_for("first summaries", lambda: len(_docs(bench, "summary")) >= 4, 40)
        ballast = fill(small_fs)
        time.sleep(10)  # three windows of summaries meet a full disk
        for name in ("grid", "uplink"):
            assert bench.procs[name].poll() is None, bench.log(name)
        full_seen = len(_docs(bench, "summary"))
        ballast.unlink()
        bench.wait_for(
            "summaries after space returned",
            lambda: len(_docs(bench, "summary")) >= full_seen + 3 * len(bench.meters),
            40,
        )
        time.sleep(4)  # the backlog the grid daemon kept while the disk was full
        seqs = [d["seq"] for d in _docs(bench)]
        dups = len(seqs) - len(set(seqs))
        gaps = set(range(min(seqs), max(seqs) + 1)) - set(seqs)
        lost_windows = 0
        window = 3.0
        for meter, arrived in _windows(bench).items():
            starts = sorted(arrived)[1:]  # the first window is a partial one
            steps = [round((b - a) / window) for a, b in itertools.pairwise(starts)]
            lost_windows += sum(s - 1 for s in steps if s > 1)
            assert all(s >= 1 for s in steps), f"{meter}: a window arrived twice: {starts}"
        print(
            f"disk full: {len(seqs)} messages, {len(set(seqs))} distinct seqs, {dups} duplicated, "
            f"{len(gaps)} seq gaps, {lost_windows} summary windows lost"
        )
        assert dups == 0, f"{dups} rows published twice"
        assert not gaps, f"seqs lost: {sorted(gaps)[:20]}"
        assert lost_windows == 0
        for name in ("grid", "uplink"):
            log = bench.log(name)
            assert "Traceback" not in log, log[-3000:]
            assert "loop uplink.forward failed" not in log
    finally:
        bench.stop()


def test_acks_on_a_full_disk_neither_crash_nor_republish(tmp_path: Path, small_fs: Path) -> None:
    """Rows waiting in the spool when the disk fills: the uplink publishes them, the broker acks,
    and the delete cannot be written. Before: the loop crashed and republished on every restart."""
    bench = Bench(tmp_path)
    try:
        bench.start()
        bench.wait_for("first summaries", lambda: len(_docs(bench, "summary")) >= 4, 40)
        bench.signal("uplink", signal.SIGSTOP)
        time.sleep(7)  # two windows wait in the spool
        ballast = fill(small_fs)
        bench.signal("uplink", signal.SIGCONT)
        time.sleep(8)
        assert bench.procs["uplink"].poll() is None, bench.log("uplink")
        ballast.unlink()
        time.sleep(8)
        seqs = [d["seq"] for d in _docs(bench)]
        dups = len(seqs) - len(set(seqs))
        gaps = set(range(min(seqs), max(seqs) + 1)) - set(seqs)
        log = bench.log("uplink")
        print(
            f"acks on a full disk: {len(seqs)} messages, {dups} duplicated, {len(gaps)} gaps, "
            f"{log.count('Traceback')} tracebacks, ack failures logged "
            f"{log.count('cannot delete')} time(s)"
        )
        assert dups == 0 and not gaps
        assert "Traceback" not in log
    finally:
        bench.stop()
