"""The spool against real SQLite files and real child processes (kill -9 included)."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gateway.core.errors import SpoolFullError
from gateway.spool.store import AsyncSpool, NewRow, Spool


def _rows(n: int, size: int = 10, daemon: str = "grid", start: int = 0) -> list[NewRow]:
    # payload of exactly `size` bytes so the bound arithmetic is checkable by hand
    return [
        NewRow(1000.0 + i, daemon, "summary", json.dumps({"i": i}).encode().ljust(size))
        for i in range(start, start + n)
    ]


def _raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the file with a separate plain sqlite3 connection: an independent reference."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_append_peek_ack_in_seq_order(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as sp:
        seqs = sp.append_many(_rows(25))
        assert seqs == sorted(seqs) and len(set(seqs)) == 25
        first = sp.peek(0, 10)
        assert [r.seq for r in first] == seqs[:10]
        assert json.loads(first[3].payload) == {"i": 3}
        assert (first[3].daemon, first[3].kind, first[3].ts) == ("grid", "summary", 1003.0)
        assert [r.seq for r in sp.peek(seqs[9], 100)] == seqs[10:]
        assert sp.ack(seqs[:10]) == 10
        assert sp.ack(seqs[:10]) == 0  # acking twice is harmless
        assert sp.depth() == 15
        st = sp.stats()
        stored = _raw(path, "SELECT coalesce(sum(length(payload)), 0) FROM spool")[0][0]
        assert st.bytes == stored == 150
        assert st.oldest_seq == seqs[10] and st.last_seq == seqs[-1]
    assert _raw(path, "PRAGMA journal_mode")[0][0] == "wal"


def test_seq_never_repeats_after_delete_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as sp:
        seqs = sp.append_many(_rows(5))
        sp.ack(seqs)
        assert sp.depth() == 0
    with Spool(path) as sp:
        again = sp.append_many(_rows(1))
    assert again[0] == seqs[-1] + 1


def test_synchronous_setting_applies(tmp_path: Path) -> None:
    for name, code in (("full", 2), ("normal", 1)):
        with Spool(tmp_path / f"{name}.db", synchronous=name) as sp:  # type: ignore[arg-type]
            assert sp._db.execute("PRAGMA synchronous").fetchone()[0] == code


@pytest.mark.parametrize(
    "kwargs",
    [{"max_bytes": 0}, {"policy": "newest"}, {"synchronous": "off"}, {"low_water": 1.0}],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path / "x.db", **kwargs)  # type: ignore[arg-type]


def _alarms(sp: Spool) -> list[dict[str, object]]:
    return [json.loads(r.payload) for r in sp.peek(0, 10_000) if r.daemon == "spool"]


def test_drop_oldest_keeps_bound_counts_and_alarms_once_per_episode(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, max_bytes=100, policy="drop_oldest", low_water=0.5) as sp:
        sp.append_many(_rows(8))  # 80 bytes, fits
        assert _alarms(sp) == []
        seqs = sp.append_many(_rows(5, start=8))  # 130 bytes: the 3 oldest must go
        for i in range(3):  # more pressure inside the same episode: no new alarm
            sp.append_many(_rows(1, start=13 + i))
        st = sp.stats()
        assert st.dropped == 3 + 3
        assert st.bytes == 100
        ordinary = [r for r in sp.peek(0, 100) if r.daemon != "spool"]
        assert [json.loads(r.payload)["i"] for r in ordinary] == list(range(6, 16))
        alarms = _alarms(sp)
        assert len(alarms) == 1 and alarms[0]["alarm"] == "spool_full"
        assert alarms[0]["active"] is True and alarms[0]["policy"] == "drop_oldest"
        assert st.alarm_active and st.alarms_raised == 1
        assert seqs[-1] in [r.seq for r in ordinary]

        # drain to 60 bytes: still above low water (50), the alarm stays
        sp.ack([r.seq for r in ordinary[:4]])
        assert sp.stats().alarm_active and len(_alarms(sp)) == 1
        sp.ack([r.seq for r in ordinary[4:5]])  # 50 bytes: not *below* low water yet
        assert sp.stats().alarm_active
        sp.ack([r.seq for r in ordinary[5:6]])  # 40 bytes: cleared, with a clearing row
        alarms = _alarms(sp)
        assert [a["active"] for a in alarms] == [True, False]
        assert not sp.stats().alarm_active
        # the alarm rows are exempt: acking them frees no bounded bytes
        sp.ack([r.seq for r in sp.peek(0, 100) if r.daemon == "spool"])
        assert sp.stats().bytes == 40

        sp.append_many(_rows(7, start=100))  # a second episode raises a second alarm
        assert [a["active"] for a in _alarms(sp)] == [True]
        assert sp.stats().alarms_raised == 2
    # counters are persistent
    with Spool(path, max_bytes=100) as sp:
        assert sp.stats().dropped == 6 + 1


def test_reject_new_refuses_whole_batch_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, max_bytes=100, policy="reject_new") as sp:
        kept = sp.append_many(_rows(9))
        with pytest.raises(SpoolFullError, match="rejected 2 rows"):
            sp.append_many(_rows(2, start=9))
        with pytest.raises(SpoolFullError):
            sp.append_many(_rows(3, start=20))
        assert sp.append_many(_rows(1, start=30))  # exactly fills the bound: accepted
        ordinary = [r for r in sp.peek(0, 100) if r.daemon != "spool"]
        assert [r.seq for r in ordinary[:9]] == kept and len(ordinary) == 10
        assert [a["active"] for a in _alarms(sp)] == [True]
    with Spool(path, max_bytes=100, policy="reject_new") as sp:
        st = sp.stats()
        assert (st.rejected, st.dropped, st.bytes, st.alarm_active) == (5, 0, 100, True)


_CHILD = textwrap.dedent(
    """
    import sys
    from gateway.spool.store import NewRow, Spool
    sp = Spool(sys.argv[1], synchronous=sys.argv[2])
    i = 0
    while True:
        rows = [NewRow(float(i + k), "child", "summary", b'{"k":%d}' % (i + k)) for k in range(3)]
        seqs = sp.append_many(rows)
        i += 3
        sys.stdout.write(" ".join(map(str, seqs)) + "\\n")
        sys.stdout.flush()
    """
)


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_sigkill_loses_nothing_committed(tmp_path: Path, synchronous: str) -> None:
    path = tmp_path / "spool.db"
    Spool(path).close()
    rng = random.Random(7)
    reported: list[int] = []
    for _ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), synchronous],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        want = rng.randint(5, 60)
        for got, line in enumerate(child.stdout, 1):  # bounded: we stop after `want` lines
            reported.extend(int(s) for s in line.split())
            if got >= want:
                break
        os.kill(child.pid, signal.SIGKILL)
        rest = child.stdout.read()  # lines flushed before the kill still count as committed
        reported.extend(int(s) for s in rest.split())
        child.wait(5)
        assert child.returncode == -signal.SIGKILL
    stored = {int(s) for (s,) in _raw(path, "SELECT seq FROM spool")}
    missing = set(reported) - stored
    assert not missing, f"{len(missing)} committed rows lost"
    assert len(reported) == len(set(reported))
    with Spool(path) as sp:  # the byte count is still consistent with the rows after the kills
        total = _raw(path, "SELECT sum(length(payload)) FROM spool")[0][0]
        assert sp.stats().bytes == total


def test_two_processes_append_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    Spool(path).close()
    script = textwrap.dedent(
        """
        import sys
        from gateway.spool.store import NewRow, Spool
        sp = Spool(sys.argv[1], synchronous="normal")
        for i in range(200):
            sp.append_many([NewRow(0.0, sys.argv[2], "summary", b"{}")] * 5)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), f"p{i}"]) for i in range(2)]
    with Spool(path) as sp:  # and a reader/acker in this process at the same time
        deadline = time.monotonic() + 30
        acked = 0
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            acked += sp.ack([r.seq for r in sp.peek(0, 50)])
        assert [p.wait(30) for p in procs] == [0, 0]
        acked += sp.ack([r.seq for r in sp.peek(0, 10_000)])
        assert acked == 2000
        assert sp.stats().last_seq == 2000 and sp.stats().bytes == 0


async def test_async_facade(tmp_path: Path) -> None:
    sp = AsyncSpool(Spool(tmp_path / "spool.db"))
    seqs = await sp.append_many(_rows(3))
    assert [r.seq for r in await sp.peek(0, 10)] == seqs
    assert await sp.ack(seqs[:2]) == 2
    assert await sp.depth() == 1
    assert (await sp.stats()).bytes == 10
    sp.spool.close()


def _on_disk(path: Path) -> int:
    """The database, its WAL and its index as the file system sees them."""
    side = (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
    return sum(p.stat().st_size for p in side if p.exists())


@pytest.mark.parametrize("policy", ["drop_oldest", "reject_new"])
def test_bound_covers_the_whole_file_wal_included(tmp_path: Path, policy: str) -> None:
    """Issue 11: `max_bytes` bounded payload bytes only; the WAL and the pages grew past it.

    A reader in another connection reads between the writes (as the uplink's peeks do); the files
    on disk (database, WAL, index) must stay within the bound throughout.
    """
    path = tmp_path / "spool.db"
    bound = 1_000_000
    reader = sqlite3.connect(path, isolation_level=None)
    with Spool(path, max_bytes=bound, policy=policy) as sp:  # type: ignore[arg-type]
        biggest = 0
        rejected = 0
        for i in range(600):
            reader.execute("SELECT count(*) FROM spool").fetchone()
            try:
                sp.append_many(_rows(4, size=900, start=4 * i))
            except SpoolFullError:
                rejected += 1
            biggest = max(biggest, _on_disk(path))
        assert biggest <= bound, f"spool files took {biggest} bytes, bound {bound}"
        st = sp.stats()
        if policy == "drop_oldest":
            assert st.dropped > 0 and rejected == 0
        else:
            assert rejected > 0 and st.rejected == 4 * rejected
        # still usable at the bound: the newest rows are there and in order
        seqs = [r.seq for r in sp.peek(0, 10_000)]
        assert seqs == sorted(seqs) and seqs
    reader.close()


def _bad_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"this is no sqlite header, a flash page gone bad.....")


def _truncated(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)


@pytest.mark.parametrize("damage", [_bad_header, _truncated], ids=["bad_header", "truncated"])
def test_corrupt_file_is_moved_aside_with_an_alarm(
    tmp_path: Path, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as sp:
        sp.append_many(_rows(400, size=200))  # a few dozen pages
    assert not Path(f"{path}-wal").exists()  # a clean close checkpointed everything
    damage(path)  # type: ignore[operator]
    with caplog.at_level(logging.CRITICAL), Spool(path) as sp:
        assert sp.moved_aside is not None and sp.moved_aside.exists()
        assert sp.moved_aside.name.startswith("spool.db.corrupt-")
        rows = sp.peek(0, 10)
        assert [(r.daemon, r.kind) for r in rows] == [("spool", "alarm")]
        alarm = json.loads(rows[0].payload)
        assert alarm["alarm"] == "spool_corrupt" and alarm["active"] is True
        assert alarm["moved_to"] == str(sp.moved_aside)
        assert sp.append_many(_rows(2))  # a fresh, working spool
    assert "corrupt" in caplog.text and "moved aside" in caplog.text
