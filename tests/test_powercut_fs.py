"""The power-cut file system really forgets what was not fsynced, and keeps what was.

Without this the power-cut campaign (hil_tests/test_power_cut.py) would prove nothing: a file
system that kept everything would pass it whatever the spool does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.spool.store import Spool
from tests.powercut_fs import PowerCutMount, powercut_mount, require_fuse


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[PowerCutMount]:
    require_fuse()
    with powercut_mount(tmp_path) as m:
        yield m


def _write(path: Path, data: bytes, *, sync: bool, offset: int = 0) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, data, offset)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def test_unsynced_data_is_gone_after_a_cut_synced_data_stays(fs: PowerCutMount) -> None:
    lost, kept, mixed = (fs.mountpoint / n for n in ("lost", "kept", "mixed"))
    _write(lost, b"x" * 10_000, sync=False)
    _write(kept, b"k" * 10_000, sync=True)
    _write(mixed, b"a" * 8192, sync=True)
    _write(mixed, b"b" * 5000, sync=False, offset=100)  # over a synced page and past it
    _write(mixed, b"c" * 3, sync=False, offset=9000)  # extends the file, unsynced
    # Before the cut every process sees the pending data, as in a page cache.
    assert lost.read_bytes() == b"x" * 10_000
    assert mixed.stat().st_size == 9003
    assert mixed.read_bytes()[100:5100] == b"b" * 5000
    fs.cut()
    assert lost.exists() and lost.stat().st_size == 0  # the create is metadata: it stays
    assert lost.read_bytes() == b""
    assert kept.read_bytes() == b"k" * 10_000
    assert mixed.read_bytes() == b"a" * 8192
    assert fs.cuts == 1


def test_close_does_not_sync_and_truncate_drops_pages_past_the_end(fs: PowerCutMount) -> None:
    f = fs.mountpoint / "f"
    f.write_bytes(b"z" * 20_000)  # written and closed, never fsynced
    _write(f, b"", sync=True)  # an fsync now makes all of it durable
    _write(f, b"y" * 20_000, sync=False)
    os.truncate(f, 6000)  # metadata, at once; the pending pages past 6000 are dropped
    assert f.read_bytes() == b"y" * 6000
    fs.cut()
    assert f.read_bytes() == b"z" * 6000


def _append_in_another_process(db: Path, n: int, synchronous: str) -> None:
    code = (
        "import sys; from gateway.spool.store import Spool\n"
        "with Spool(sys.argv[1], synchronous=sys.argv[3]) as sp:\n"
        "    for i in range(int(sys.argv[2])): sp.append('t', 'summary', {'i': i})\n"
    )
    subprocess.run([sys.executable, "-c", code, str(db), str(n), synchronous], check=True)


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_the_spool_across_processes_and_a_cut(fs: PowerCutMount, synchronous: str) -> None:
    """WAL needs its -shm shared-mmapped by every process: one writes while this one holds the
    spool open, both see every row; then a cut keeps what `full` synced and loses the rest."""
    db = fs.mountpoint / "spool.sqlite"
    with Spool(db, synchronous=synchronous) as reader:  # type: ignore[arg-type]
        reader.append("t", "summary", {"first": True})
        _append_in_another_process(db, 30, synchronous)
        assert len(reader.peek(0, 1000)) == 31
        reader.append("t", "summary", {"last": True})
    fs.cut()
    with Spool(db) as sp:
        survived = len(sp.peek(0, 1000))
    if synchronous == "full":
        assert survived == 32
    else:
        # NORMAL syncs the WAL only at a checkpoint: a few small commits never reach one. The
        # close checkpointed (and synced) the WAL, so they survive only when this process closed
        # it last; the other process's commits alone would be lost. Either way the spool opens.
        assert survived in (0, 32)
