"""Spool throughput in rows per second: append in batches of 1, 10 and 100 rows with
``synchronous = full`` and ``normal``, and drain (peek + ack of 100 rows per transaction, as the
forwarder does). Each figure is the median of repeated runs on a fresh file in a temp dir (on the
same file system as /tmp: an SD card on a gateway is much slower for ``full``). Prints a markdown
table and writes bench/out/spool.json.

    python bench/bench_spool.py [--repeats N] [--rows N] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from gateway.spool.store import NewRow, Spool

OUT = Path(__file__).resolve().parent / "out" / "spool.json"
# a realistic summary: a handful of points with min/mean/max/last/count
PAYLOAD = json.dumps(
    {
        f"p{i}": {"min": 229.1, "mean": 230.2, "max": 231.7, "last": 230.0, "n": 10}
        for i in range(6)
    },
    separators=(",", ":"),
).encode()


def _append_rate(workdir: Path, sync: str, batch: int, rows: int) -> float:
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        sp = Spool(Path(d) / "s.db", synchronous=sync, max_bytes=1 << 30)  # type: ignore[arg-type]
        block = [NewRow(1.7e9, "grid", "summary", PAYLOAD)] * batch
        n = max(1, rows // batch)
        t0 = time.perf_counter()
        for _ in range(n):
            sp.append_many(block)
        dt = time.perf_counter() - t0
        assert sp.depth() == n * batch  # every row really is there
        sp.close()
    return n * batch / dt


def _drain_rate(workdir: Path, sync: str, rows: int, limit: int = 100) -> float:
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        sp = Spool(Path(d) / "s.db", synchronous=sync, max_bytes=1 << 30)  # type: ignore[arg-type]
        for _ in range(rows // 1000):
            sp.append_many([NewRow(1.7e9, "grid", "summary", PAYLOAD)] * 1000)
        t0 = time.perf_counter()
        drained = 0
        while batch := sp.peek(0, limit):
            drained += sp.ack([r.seq for r in batch])
        dt = time.perf_counter() - t0
        assert drained == rows // 1000 * 1000 and sp.depth() == 0
        sp.close()
    return drained / dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2000, help="rows per append measurement")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    results = []
    print(f"payload {len(PAYLOAD)} bytes, median of {args.repeats}, dir {args.dir}\n")
    print("| operation | synchronous | rows per transaction | rows/s |")
    print("|---|---|---:|---:|")
    for sync in ("full", "normal"):
        for batch in (1, 10, 100):
            # batch-of-1 with fsync is slow: fewer rows keep the run short, the rate is the same
            rows = args.rows // 4 if batch == 1 else args.rows * (5 if batch == 100 else 1)
            rate = statistics.median(
                _append_rate(args.dir, sync, batch, rows) for _ in range(args.repeats)
            )
            results.append({"op": "append", "synchronous": sync, "batch": batch, "rows_s": rate})
            print(f"| append | {sync} | {batch} | {rate:,.0f} |")
        rate = statistics.median(_drain_rate(args.dir, sync, 10_000) for _ in range(args.repeats))
        results.append({"op": "drain", "synchronous": sync, "batch": 100, "rows_s": rate})
        print(f"| drain (peek+ack) | {sync} | 100 | {rate:,.0f} |")

    meta = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
        "payload_bytes": len(PAYLOAD),
        "repeats": args.repeats,
        "dir": str(args.dir),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
