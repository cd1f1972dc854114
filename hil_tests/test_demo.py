"""The README's main job: `gridgate demo` must work on a fresh set-up, with nothing configured."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.hil


def test_demo_shows_summaries_of_every_meter(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--duration",
            "14",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout
    assert re.search(r"gridgate/demo/bench-1/status\s+online", out)
    for meter in ("head", "cab1", "cab2", "cab3"):
        assert re.search(rf"grid/summary #\d+ {meter}: .*U1 2\d\d\.\d V", out), meter
    last = out.strip().splitlines()[-1]
    m = re.match(
        r"gridgate demo: (\d+) messages upstream \((\d+) summaries, (\d+) alarms\), 0 duplicate",
        last,
    )
    assert m and int(m.group(2)) >= 8, last
    # The daemons really ran as a separate process and logged to the work dir.
    assert "running grid, uplink" in (tmp_path / "gridgate.log").read_text()
    assert (tmp_path / "state" / "spool.sqlite").exists()


def test_demo_without_mosquitto_says_how_to_install_it(tmp_path: Path) -> None:
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, GRIDGATE_MOSQUITTO=str(tmp_path / "no-such-mosquitto")),
    )
    assert proc.returncode == 69
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "mosquitto not found" in lines[0] and "apt-get install mosquitto" in lines[0]
