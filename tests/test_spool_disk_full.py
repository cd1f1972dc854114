"""The spool's policy on a full disk (not only a full bound), on a real 2 MB tmpfs filled with a
ballast file. Needs root for the mount; skipped with the reason otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core.errors import SpoolFullError
from gateway.spool.opening import SpoolDiskFullError
from gateway.spool.store import NewRow, Spool
from tests.small_fs import fill, mounted_tmpfs


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "fs") as where:
        yield where


def _rows(n: int, start: int = 0) -> list[NewRow]:
    return [
        NewRow.from_body("grid", "summary", {"i": i, "pad": "x" * 500})
        for i in range(start, start + n)
    ]


def test_reject_new_applies_on_a_full_disk(small_fs: Path) -> None:
    path = small_fs / "spool.db"
    with Spool(path, max_bytes=1_000_000, policy="reject_new") as sp:
        sp.append_many(_rows(5))
    with Spool(path, max_bytes=1_000_000, policy="reject_new") as sp:
        ballast = fill(small_fs)
        for k in range(3):
            with pytest.raises(SpoolFullError):  # refused by policy, not an I/O error to retry
                sp.append_many(_rows(4, start=100 + 4 * k))
        ballast.unlink()
        sp.append_many(_rows(1, start=200))
        st = sp.stats()
        assert st.rejected == 12 and st.depth == 6 + st.alarms_raised


def test_drop_oldest_on_a_full_disk_uses_free_pages_then_asks_to_retry(small_fs: Path) -> None:
    """What a full disk allows drop_oldest: the free pages of delivered rows take new rows; once
    the WAL holds pages that need the database file to grow, not even a delete can be committed,
    so the spool says so (SpoolDiskFullError: the outbox keeps the batch and retries) instead of
    a generic error. Nothing committed is lost and writing resumes when space returns."""
    path = small_fs / "spool.db"
    with Spool(path, max_bytes=1_000_000, policy="drop_oldest") as sp:
        for k in range(40):
            sp.append_many(_rows(10, start=10 * k))
        sp.ack(range(1, 301))  # delivered upstream: their pages are free for reuse
        sp._checkpoint()  # as after any commit past the WAL's share
        ballast = fill(small_fs)
        written: list[int] = []
        with pytest.raises(SpoolDiskFullError):
            for k in range(300):
                written += sp.append_many(_rows(10, start=1000 + 10 * k))
        assert len(written) >= 300, "the free pages should have taken rows on the full disk"
        ballast.unlink()
        written += sp.append_many(_rows(1, start=5000))
        stored = [r.seq for r in sp.peek(0, 100_000) if r.daemon == "grid"]
        assert set(written) <= set(stored) and stored == sorted(stored)
        assert sp.stats().dropped == 0
