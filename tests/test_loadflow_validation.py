"""Invalid feeders are refused with every problem named; a load flow that cannot converge says
so with NaN results; the CLI writes output power-grid-model itself reads back."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gateway.core.errors import ConfigError
from gateway.native.loadflow import Feeder, Loads
from tests.test_loadflow_support import IEEE_JSON, pgm_solve, random_feeder


def _write(tmp_path: Path, doc: dict) -> Path:  # type: ignore[type-arg]
    path = tmp_path / "feeder.json"
    path.write_text(json.dumps(doc))
    return path


def test_mesh_island_and_bad_data_are_all_reported(tmp_path: Path) -> None:
    doc = random_feeder(11)
    data = doc["data"]
    lines = data["line"]
    mesh = copy.deepcopy(lines[-1])
    mesh.update(
        id=99001,
        from_node=1,
        to_node=lines[-1]["to_node"] if lines[-1]["from_node"] == 1 else lines[-1]["from_node"],
    )
    mesh["from_node"], mesh["to_node"] = (
        1,
        (set([lines[-1]["from_node"], lines[-1]["to_node"]]) - {1}).pop(),
    )
    lines.append(mesh)
    data["node"].append({"id": 99002, "u_rated": 400.0})  # an island
    lines[0]["r1"] = -1.0
    lines[1]["to_node"] = 424242  # unknown node
    data["sym_load"].append(
        {
            "id": lines[2]["id"],
            "node": 1,
            "status": 1,
            "type": 0,
            "p_specified": 1.0,
            "q_specified": 0.0,
        }
    )  # duplicate id
    with pytest.raises(ConfigError) as err:
        Feeder.from_pgm_json(_write(tmp_path, doc))
    text = str(err.value)
    assert "closes a mesh" in text and "radial feeders" in text
    assert "node[id=99002]: is not connected to the source (an island)" in text
    assert f"line[id={lines[0]['id']}].r1: must not be negative" in text
    assert f"line[id={lines[1]['id']}].to_node: unknown node 424242" in text
    assert "duplicate id" in text
    assert text.startswith(str(tmp_path / "feeder.json"))


def test_unsupported_vector_group_is_named(tmp_path: Path) -> None:
    doc = next(d for d in map(random_feeder, range(50)) if "transformer" in d["data"])
    doc["data"]["transformer"][0]["winding_to"] = 2
    with pytest.raises(ConfigError, match=r"transformer\[id=\d+\]\.winding_from: vector group"):
        Feeder.from_pgm_json(_write(tmp_path, doc))


def test_non_convergent_load_flow_says_so_and_recovers() -> None:
    feeder = Feeder.from_pgm_json(IEEE_JSON)
    good = feeder.nominal_loads()
    huge = Loads(good.p * 5000.0, good.q * 5000.0)  # 5 MW per house: no solution exists
    res = feeder.solve(huge)
    assert not bool(res.converged)
    assert np.isnan(res.v).all() and np.isnan(res.u_pu).all()
    ok = feeder.solve(good)
    assert bool(ok.converged)
    batch = feeder.solve_batch(
        Loads(np.stack([good.p, huge.p, good.p]), np.stack([good.q, huge.q, good.q]))
    )
    assert batch.converged.tolist() == [True, False, True]
    assert np.abs(batch.v[2] - ok.v).max() < 1e-9


def test_sensitivity_matches_a_direct_difference() -> None:
    feeder = Feeder.from_pgm_json(IEEE_JSON, injection_nodes=[34, 900], tol=1e-12)
    sens = feeder.sensitivities([900])
    base = feeder.solve()
    p = np.zeros((2, 3))
    p[1, 1] = -100.0  # 100 W of PV on phase b at node 900
    moved = feeder.solve(node_power=Loads(p, np.zeros((2, 3))))
    predicted = base.u_pu + sens.du_dp[0, 1] * -100.0
    assert np.abs(moved.u_pu - predicted).max() < 1e-7
    assert sens.du_dp[0, 1, list(feeder.node_ids).index(900), 1] < 0  # load lowers its voltage


def test_cli_output_reads_back_in_power_grid_model(tmp_path: Path) -> None:
    from power_grid_model.utils import json_deserialize

    doc = random_feeder(5)
    feeder_path = _write(tmp_path, doc)
    loads = doc["data"]["sym_load"][:2]
    update = {
        "version": "1.0",
        "type": "update",
        "is_batch": True,
        "attributes": {},
        "data": [
            {"sym_load": [{"id": ld["id"], "p_specified": ld["p_specified"] * k} for ld in loads]}
            for k in (0.5, 2.0)
        ],
    }
    upd_path = tmp_path / "update.json"
    upd_path.write_text(json.dumps(update))
    out = tmp_path / "out.json"
    cmd = [
        sys.executable,
        "-m",
        "gateway.grid.loadflow_cli",
        "loadflow",
        str(feeder_path),
        "--update",
        str(upd_path),
        "-o",
        str(out),
    ]
    assert subprocess.run(cmd, check=False).returncode == 0
    ours = json_deserialize(out.read_text())
    from power_grid_model.utils import json_deserialize as jd

    ref = pgm_solve(doc, False, jd(json.dumps(update)))
    for comp, attr, tol in (("node", "u_pu", 1e-7), ("line", "i_from", 1e-4)):
        a = ours[comp][:, np.argsort(ours[comp]["id"][0])]
        b = ref[comp][:, np.argsort(ref[comp]["id"][0])]
        assert np.abs(a[attr] - b[attr]).max() < tol
    bad = tmp_path / "bad.json"
    doc["data"]["line"][0]["r1"] = -1
    bad.write_text(json.dumps(doc))
    r = subprocess.run(
        [sys.executable, "-m", "gateway.grid.loadflow_cli", "loadflow", str(bad)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 78 and "r1: must not be negative" in r.stderr
