"""`gridgate scan opcua URL` against the plant simulator's real asyncua server, as a technician
would run it: both as processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def plant_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.sim.plant_server",
            "--port",
            "0",
            "--profile",
            "gas_turbine",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_scan_lists_node_ids_types_and_values(plant_url: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "scan", "opcua", plant_url, "--allow-insecure"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    rows = [r for r in out.stdout.splitlines() if "gas_turbine.power" in r]
    assert rows, out.stdout[-2000:]
    assert "ns=2;s=gas_turbine.power" in rows[0]
    assert "2:GasTurbine/2:power" in rows[0]
    assert "Double" in rows[0] and "Good" in rows[0]
    assert "variables; use node_id or browse_path" in out.stderr + out.stdout


def test_scan_of_a_dead_endpoint_says_so(plant_url: str) -> None:
    dead = plant_url.rsplit(":", 1)[0] + ":1"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "scan",
            "opcua",
            dead,
            "--allow-insecure",
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert out.stderr.startswith("scan opcua: ")
    assert "Traceback" not in out.stderr
