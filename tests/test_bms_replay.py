"""``gridgate replay bms`` on recordings of the rack simulator: the file format, its errors with
file:line, the recorder's output replays, and SOC accuracy against the simulator's truth.

Accuracy: several simulated hours (the day profile: rest, C/4 charge, grid-service pulses), the
estimator started 20 % above the true SOC of every cell, RMSE over all cells and steps after
30 minutes. The estimator is given the cell's OCV curve the way a deployment gets the cell
maker's (``[bms.cells] ocv_soc/ocv_v``); with the built-in generic curve the figure is the table
mismatch (reported, see the test at the end).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.bms.config import BmsConfig, RecordingSettings
from gateway.bms.recorder import Recorder, header
from gateway.bms.replay import ReplayError, replay
from gateway.config import load_config
from gateway.core.model import Quality
from gateway.sim.cells import CellParams, Chemistry, maker_curve
from gateway.sim.rack import Profile, RackSim, RackSpec
from gateway.sim.toml_text import dumps

BOARDS = 4
CLI = (sys.executable, "-m", "gateway.cli")


def config_text(tmp_path: Path, chem: str, *, cell_ocv: bool, boards: int = BOARDS) -> Path:
    p = CellParams.nominal(Chemistry(chem))
    cells: dict[str, Any] = {"capacity_ah": p.capacity_ah}
    if cell_ocv:
        # The simulated cell as its maker describes it: the low-rate OCV test (1 % steps) and a
        # 1RC fit (the two RC pairs lumped: summed resistance, the slow time constant).
        soc, volts = maker_curve(Chemistry(chem))
        cells |= {
            "ocv_soc": soc.tolist(),
            "ocv_v": volts.tolist(),
            "r0_ohm": p.r0,
            "r1_ohm": p.r1 + p.r2,
            "c1_farad": p.tau2 / (p.r1 + p.r2),
        }
    doc = {
        "gateway": {"site": "s", "id": "g", "state_dir": str(tmp_path)},
        "bms": {
            "chemistry": chem,
            "cells": cells,
            # Never opened: replay reads the recording, not the bus.
            "lines": [{"name": "a", "port": "/dev/null", "boards": boards}],
        },
    }
    path = tmp_path / f"{chem}-{cell_ocv}.toml"
    path.write_text(dumps(doc))
    return path


def load(path: Path) -> BmsConfig:
    cfg = load_config(path, env={}).sections["bms"]
    assert cfg is not None
    return cfg


def record_trace(
    tmp_path: Path, chem: str, hours: float, dt: float = 1.0
) -> tuple[Path, np.ndarray]:
    """Simulate ``hours`` and record it with the daemon's Recorder; the true SOC per row."""
    cap = CellParams.nominal(Chemistry(chem)).capacity_ah
    spec = RackSpec(lines=1, boards_per_line=BOARDS, chemistry=Chemistry(chem), seed=3)
    sim = RackSim(spec, Profile.day(cap, seed=1))
    rec = Recorder(
        RecordingSettings(tmp_path / "rec", 10**9, 5, 1),
        spec.cells,
        spec.boards * spec.temps_per_board,
    )
    good = np.full(spec.cells, Quality.GOOD, dtype=np.uint8)
    tgood = np.full(spec.boards * spec.temps_per_board, Quality.GOOD, dtype=np.uint8)
    truth = []
    for k in range(int(hours * 3600 / dt) + 1):
        if k:
            sim.step(dt)
        m = sim.measure()
        truth.append(sim.soc)
        rec.write(1.7e9 + m.t, m.current_a, m.string_v, m.cell_v, good, m.temp_c.reshape(-1), tgood)
    rec.close()
    assert rec.path is not None
    return rec.path, np.array(truth)


def rmse_after_30_min(path: Path, cfg: BmsConfig, truth: np.ndarray, dt: float = 1.0) -> float:
    soc0 = float(np.mean(truth[0])) + 0.20
    errs = np.array([s.soc - truth[k + 1] for k, s in enumerate(replay(path, cfg, soc0=soc0))])
    t = dt * np.arange(1, len(errs) + 1)
    return float(np.sqrt(np.mean(errs[t >= 1800.0] ** 2)))


@pytest.fixture(scope="module")
def nmc_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, Path]:
    d = tmp_path_factory.mktemp("nmc")
    path, truth = record_trace(d, "nmc", hours=3.0)
    return path, truth, d


def test_nmc_soc_rmse_after_30_min_from_20_percent_error(nmc_trace) -> None:
    path, truth, d = nmc_trace
    rmse = rmse_after_30_min(path, load(config_text(d, "nmc", cell_ocv=True)), truth)
    print(f"NMC, cell OCV configured: RMSE after 30 min = {rmse:.4f}")
    assert rmse <= 0.02


def test_nmc_with_the_generic_curve_shows_the_table_mismatch(nmc_trace) -> None:
    path, truth, d = nmc_trace
    rmse = rmse_after_30_min(path, load(config_text(d, "nmc", cell_ocv=False)), truth)
    print(f"NMC, built-in OCV curve: RMSE after 30 min = {rmse:.4f}")
    # The built-in curve sits 15-30 mV above the simulated cell's: a few % of SOC, never 20 %.
    assert 0.005 < rmse < 0.06


@pytest.mark.slow
def test_lfp_soc_rmse_after_30_min_from_20_percent_error(tmp_path: Path) -> None:
    path, truth = record_trace(tmp_path, "lfp", hours=3.0)
    rmse = rmse_after_30_min(path, load(config_text(tmp_path, "lfp", cell_ocv=True)), truth)
    print(f"LFP, cell OCV configured: RMSE after 30 min = {rmse:.4f}")
    assert rmse <= 0.03


def test_cli_writes_step_statistics_and_final_soc(nmc_trace, tmp_path: Path) -> None:
    path, truth, d = nmc_trace
    cfg = config_text(d, "nmc", cell_ocv=True)
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [*CLI, "replay", "bms", str(path), "-c", str(cfg), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = out.read_text().splitlines()
    assert rows[0].startswith("t,current_a,soc_min,soc_min_cell,soc_mean")
    assert len(rows) == 1 + len(truth) - 1  # one per step after the first row
    final = out.with_suffix(".final.csv").read_text().splitlines()
    assert final[0] == "cell,soc" and len(final) == 1 + truth.shape[1]
    soc = np.array([float(line.split(",")[1]) for line in final[1:]])
    assert np.sqrt(np.mean((soc - truth[-1]) ** 2)) < 0.02
    last = rows[-1].split(",")
    assert abs(float(last[4]) - float(np.mean(soc))) < 1e-4  # soc_mean of the last step
    assert f"{len(truth) - 1} step(s)" in proc.stdout


def test_recorder_rotates_and_keeps_the_newest(tmp_path: Path) -> None:
    settings = RecordingSettings(tmp_path, 2_000, 3, 2)
    rec = Recorder(settings, 14, 2)
    v = np.full(14, 3.7)
    q = np.zeros(14, dtype=np.uint8)
    q[3] = Quality.BAD
    for k in range(200):
        rec.write(
            1.7e9 + k * 0.1 + k * 1.001,
            1.5,
            51.8,
            v,
            q,
            np.array([25.0, 26.0]),
            np.zeros(2, np.uint8),
        )
    rec.close()
    files = sorted(tmp_path.glob("bms-*.csv"))
    assert len(files) == 3
    assert rec.rows == 100  # every second cycle
    for f in files:
        assert f.stat().st_size <= 2_000
        lines = f.read_text().splitlines()
        assert lines[0] == header(14, 2).strip()
        assert lines[1].split(",")[3 + 3] == ""  # the BAD cell is empty, never a held value


HEAD14 = "t,current_a," + ",".join(f"v_{i:04d}" for i in range(1, 15))
ROW14 = ",3.7" * 14


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "1: empty file"),
        ("t,v_0001\n", "1: the header needs t and current_a"),
        ("t,current_a,v_0001,v_0003\n", "1: v_NNNN columns must run"),
        ("t,current_a,v_0001\n0,1,3.7\n", "1: 1 cell voltage column(s), the config's rack has 14"),
        (HEAD14 + "\n0,1," + "3.7," * 13 + "x\n", "2: not a number"),
        (HEAD14 + f"\n1,1{ROW14}\n1,1{ROW14}\n", "3: t = 1.0 does not increase"),
        (HEAD14 + ",temp_0001,temp_0002\n", "1: 2 temperature column(s), expected 4 or 14"),
    ],
)
def test_bad_recordings_name_file_and_line(tmp_path: Path, text: str, reason: str) -> None:
    rec = tmp_path / "rec.csv"
    rec.write_text(text)
    cfg = load(config_text(tmp_path, "nmc", cell_ocv=False, boards=1))
    with pytest.raises(ReplayError) as err:
        list(replay(rec, cfg))
    assert str(err.value).startswith(f"{rec}:{reason}"), str(err.value)
