"""Shared helpers of the load-flow tests (no tests here): the IEEE feeder's data, independent
solvers (power-grid-model, OpenDSS) run the same way every time, random radial feeders."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from gateway.native.loadflow import Feeder, Loads

IEEE_DIR = Path(__file__).parent / "data" / "ieee_eu_lv"
IEEE_JSON = IEEE_DIR / "ieee_eu_lv.json"
PF = 0.95


def ieee_doc() -> dict[str, Any]:
    return json.loads(IEEE_JSON.read_text())


def ieee_profiles() -> tuple[list[int], np.ndarray]:
    """Load ids and their kW per minute [1440, n_loads]."""
    text = (IEEE_DIR / "load_profiles.csv").read_text().split("\n")
    ids = [int(x) for x in text[0].split(",")[1:]]
    kw = np.array([[float(x) for x in r.split(",")[1:]] for r in text[1:] if r])
    return ids, kw


def ieee_loads(feeder: Feeder, minutes: list[int] | range) -> Loads:
    """Loads of the listed minutes, [T, n_loads, 3] W/var on each load's phase."""
    ids, kw = ieee_profiles()
    col = {lid: i for i, lid in enumerate(ids)}
    phase = np.argmax(np.abs(feeder.model.load_p), axis=1)
    cols = [col[int(lid)] for lid in feeder.load_ids]
    p = np.zeros((len(minutes), feeder.model.n_loads, 3))
    rows = np.arange(feeder.model.n_loads)
    p[:, rows, phase] = kw[list(minutes)][:, cols] * 1e3
    return Loads(p, p * math.tan(math.acos(PF)))


def pgm_update(feeder: Feeder, loads: Loads) -> dict[str, np.ndarray]:
    """A power-grid-model batch update of asym_load powers."""
    from power_grid_model import initialize_array

    steps = loads.p.shape[0]
    upd = initialize_array("update", "asym_load", (steps, feeder.model.n_loads))
    upd["id"] = feeder.load_ids[None, :]
    upd["p_specified"] = loads.p
    upd["q_specified"] = loads.q
    return {"asym_load": upd}


def pgm_solve(
    doc: dict[str, Any], symmetric: bool, update: Any = None, method: str = "newton_raphson"
) -> dict[str, np.ndarray]:
    from power_grid_model import CalculationMethod, PowerGridModel
    from power_grid_model.utils import json_deserialize

    model = PowerGridModel(json_deserialize(json.dumps(doc)))
    return model.calculate_power_flow(
        symmetric=symmetric,
        error_tolerance=1e-10,
        max_iterations=30,
        calculation_method=getattr(CalculationMethod, method),
        update_data=update,
    )


def pgm_voltages(out: dict[str, np.ndarray], feeder: Feeder, symmetric: bool) -> np.ndarray:
    """PGM node voltages as complex p.u., ordered like the feeder's nodes, phases last."""
    node = out["node"]
    ids = node["id"] if node["id"].ndim == 1 else node["id"][0]
    index = {int(n): i for i, n in enumerate(ids)}
    sel = [index[int(n)] for n in feeder.node_ids]
    v = node["u_pu"] * np.exp(1j * node["u_angle"])
    v = v[:, sel] if v.ndim == (2 if symmetric else 3) else v[sel]
    if symmetric:
        a = np.exp(-2j * np.pi / 3)
        v = v[..., None] * np.array([1, a, a * a])
    return v


def opendss_circuit() -> Any:
    """The IEEE feeder compiled in OpenDSS from the copied files, loads kept constant power."""
    import opendssdirect as dss

    dss.Basic.ClearAll()
    cmds = [
        "clear",
        "Set DefaultBaseFrequency=50",
        "New circuit.LVTest",
        "Edit Vsource.Source BasekV=11 pu=1.05 ISC3=3000 ISC1=5",
        f"Redirect [{IEEE_DIR / 'LineCode.txt'}]",
        f"Redirect [{IEEE_DIR / 'Lines.txt'}]",
        f"Redirect [{IEEE_DIR / 'Transformers.txt'}]",
    ]
    for c in cmds:
        dss.Text.Command(c)
    for line in (IEEE_DIR / "Loads.txt").read_text().splitlines():
        if line.strip():
            dss.Text.Command(" ".join(w for w in line.split() if not w.startswith("Yearly=")))
    for c in (
        "Set voltagebases=[11 .416]",
        "Calcvoltagebases",
        "batchedit load..* vmaxpu=2 vminpu=0.5 model=1",
        "set tolerance=1e-12",
        "set maxiterations=100",
    ):
        dss.Text.Command(c)
    return dss


def opendss_voltages(dss: Any, feeder: Feeder, loads_kw: np.ndarray) -> np.ndarray:
    """|V| p.u. of 416/sqrt(3) per node and phase after a snapshot with the loads' kW."""
    names = dss.Loads.AllNames()
    for name, kw in zip(names, loads_kw, strict=True):
        dss.Loads.Name(name)
        dss.Loads.kW(float(kw))
        dss.Loads.PF(PF)
    dss.Solution.Solve()
    assert dss.Solution.Converged()
    out = np.empty((feeder.model.n_nodes, 3))
    base = 416.0 / math.sqrt(3)
    for i, nid in enumerate(feeder.node_ids):
        dss.Circuit.SetActiveBus(str(int(nid)))
        mags = dss.Bus.VMagAngle()[0::2]
        out[i] = np.array(mags[:3]) / base
    return out


def random_feeder(seed: int) -> dict[str, Any]:
    """A random radial feeder in power-grid-model's input format: 2-150 nodes, random line
    data (some with capacitance), a Dyn or YNyn transformer or none, sym/asym loads of every
    type, PV generators feeding back."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 150))
    u = 400.0
    nid = list(range(1, n + 1))
    data: dict[str, list[dict[str, Any]]] = {"node": [{"id": i, "u_rated": u} for i in nid]}
    ids = iter(range(1000, 100000))
    lines = []
    for k in range(1, n):
        par = int(rng.integers(max(0, k - 8), k))
        r1 = float(rng.uniform(0.002, 0.08))
        x1 = float(rng.uniform(0.001, 0.03))
        c = float(rng.uniform(0, 4e-7)) if rng.random() < 0.2 else 0.0
        lines.append(
            {
                "id": next(ids),
                "from_node": nid[par],
                "to_node": nid[k],
                "from_status": 1,
                "to_status": 1,
                "r1": r1,
                "x1": x1,
                "c1": c,
                "tan1": 0.0,
                "r0": r1 * float(rng.uniform(1, 4)),
                "x0": x1 * float(rng.uniform(1, 4)),
                "c0": c * 0.6,
                "tan0": 0.0,
                "i_n": 200.0,
            }
        )
        if rng.random() < 0.5:  # PGM wants from/to in any direction; exercise reversed lines
            lines[-1]["from_node"], lines[-1]["to_node"] = nid[k], nid[par]
    data["line"] = lines
    kind = int(rng.integers(0, 3))
    src_node = 1
    if kind > 0:
        data["node"].append({"id": 0, "u_rated": 10e3})
        src_node = 0
        dyn = kind == 1
        data["transformer"] = [
            {
                "id": next(ids),
                "from_node": 0,
                "to_node": 1,
                "from_status": 1,
                "to_status": 1,
                "u1": 10.5e3 if rng.random() < 0.3 else 10e3,
                "u2": 420.0,
                "sn": 630e3,
                "uk": 0.04,
                "pk": 5000.0,
                "i0": float(rng.uniform(0, 0.01)),
                "p0": float(rng.uniform(0, 800)),
                "winding_from": 2 if dyn else 1,
                "winding_to": 1,
                "clock": int(rng.choice([1, 5, 11])) if dyn else 0,
                "tap_side": 0,
                "tap_pos": 0,
                "tap_min": 0,
                "tap_max": 0,
                "tap_nom": 0,
                "tap_size": 0.0,
                "r_grounding_to": float(rng.uniform(0, 0.5)),
            }
        ]
    data["source"] = [
        {
            "id": next(ids),
            "node": src_node,
            "status": 1,
            "u_ref": float(rng.uniform(0.97, 1.05)),
            "u_ref_angle": float(rng.uniform(-0.3, 0.3)),
            "sk": float(rng.uniform(5e6, 1e9)),
            "rx_ratio": float(rng.uniform(0.05, 0.5)),
            "z01_ratio": float(rng.uniform(0.5, 3)),
        }
    ]
    scale = float(rng.uniform(0.1, 1.0)) * 25e3 / n
    for comp in ("sym_load", "asym_load", "sym_gen", "asym_gen"):
        rows = []
        for _ in range(int(rng.integers(0, n // 2 + 2))):
            typ = int(rng.integers(0, 3))
            node = nid[int(rng.integers(0, n))]
            if comp.startswith("sym"):
                p, q = float(rng.uniform(0, 3 * scale)), float(rng.uniform(-0.3, 0.5) * scale)
            else:
                mask = rng.random(3) < 0.6
                p = list(rng.uniform(0, 3 * scale, 3) * mask)
                q = list(rng.uniform(-0.3, 0.5, 3) * scale * mask)
            rows.append(
                {
                    "id": next(ids),
                    "node": node,
                    "status": int(rng.random() > 0.05),
                    "type": typ,
                    "p_specified": p,
                    "q_specified": q,
                }
            )
        data[comp] = rows
    return {"version": "1.0", "type": "input", "is_batch": False, "attributes": {}, "data": data}


def write_doc(doc: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(copy.deepcopy(doc)))
    return path
