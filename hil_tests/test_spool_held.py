"""Start while another process holds the spool (issue 11: the uplink exited 73 "database is
locked"). The holder keeps an exclusive transaction open for longer than the spool's 10 s busy
timeout, as a stuck writer or a backup tool would; the uplink must wait, log once, then run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.sim.upstream import Upstream
from gateway.spool.store import Spool
from hil_tests.bench import Bench

pytestmark = pytest.mark.hil

_HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def test_uplink_start_waits_for_a_spool_held_by_another_process(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    try:
        bench.broker.start()
        bench.upstream = Upstream(bench.broker.host, bench.broker.port)
        bench.upstream.start()
        bench.start_devices()
        bench.write_config()
        spool = bench.state_dir / "spool.sqlite"
        bench.state_dir.mkdir(parents=True)
        with Spool(spool) as sp:
            sp.append("grid", "summary", {"before": True})
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(spool), "14"], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        bench.start_daemon("uplink")
        time.sleep(12)
        proc = bench.procs["uplink"]
        assert proc.poll() is None, f"uplink exited {proc.returncode}:\n{bench.log('uplink')}"
        assert bench.log("uplink").count("spool not writable, waiting") == 1
        holder.wait(timeout=10)
        bench.wait_for("the waiting row upstream", lambda: len(bench.upstream.docs()) >= 1, 40)  # type: ignore[union-attr]
        assert "writable again, starting" in bench.log("uplink")
        assert "Traceback" not in bench.log("uplink")
    finally:
        bench.stop()
