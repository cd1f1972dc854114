"""Convert the IEEE European LV test feeder's OpenDSS files to power-grid-model JSON input.

Reads the subset of OpenDSS these files use: ``LineCode`` (R1/X1/R0/X0/C1/C0 per km), ``Line``
(linecode, length in m), one two-winding ``Transformer`` (Delta-Wye, kVs, kVAs, XHL, %R per
winding), single-phase wye ``Load`` (kW, PF, bus.phase) and the ``Vsource`` edit in
``Master.dss`` (basekV, pu, ISC3, ISC1). Ids: LV bus ``n`` is node ``n``; the source bus is node
``SOURCE_NODE_ID``; line ``LINEn`` is ``LINE_ID_OFFSET + n``; load ``LOADn`` is
``LOAD_ID_OFFSET + n`` (an ``asym_load`` with power on its phase only).

OpenDSS defaults filled in where the files rely on them: a winding's %R is 0.2 (so pk is 0.4 %
of sn), a Vsource's X1/R1 is 4, a line's normamps (here ``i_n``) is 400 A. Loads are constant
power (OpenDSS turns them into constant impedance outside Vminpu/Vmaxpu; compare with wide
limits). The zero-sequence source data does not matter behind the Dyn transformer.

    python tools/opendss_import.py DSS_DIR OUT.json
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

SOURCE_NODE_ID: Final = 0
LINE_ID_OFFSET: Final = 10000
LOAD_ID_OFFSET: Final = 20000
TRANSFORMER_ID: Final = 30000
SOURCE_ID: Final = 30001
LV_U_RATED_DEFAULT: Final = 416.0
DEFAULT_PCT_R_WINDING: Final = 0.2
DEFAULT_X1R1: Final = 4.0
DEFAULT_NORMAMPS: Final = 400.0

_NEW = re.compile(r"^\s*(new|edit)\s+(\w+)\.(\S+)\s+(.*)$", re.IGNORECASE)
_KV = re.compile(r"(\w+|%\w+)\s*=\s*(\[[^\]]*\]|\([^)]*\)|\S+)")


@dataclass(frozen=True)
class DssLoad:
    load_id: int
    node: int
    phase: int  # 0, 1, 2
    kw: float
    pf: float
    shape: str


def _statements(path: Path) -> list[tuple[str, str, str, dict[str, str]]]:
    out = []
    for raw in path.read_text().splitlines():
        m = _NEW.match(raw.split("!")[0].split("//")[0])
        if m:
            props = {k.lower(): v for k, v in _KV.findall(m.group(4))}
            out.append((m.group(1).lower(), m.group(2).lower(), m.group(3), props))
    return out


def _list(value: str) -> list[str]:
    return value.strip("[]() ").replace(",", " ").split()


def _bus(name: str) -> tuple[int, list[int]]:
    parts = name.split(".")
    return int(parts[0]), [int(p) for p in parts[1:]]


def convert(dss_dir: Path) -> tuple[dict[str, Any], list[DssLoad]]:
    """The feeder as a power-grid-model input document, and its loads with their shapes."""
    codes: dict[str, dict[str, float]] = {}
    nodes: dict[int, float] = {}
    lines: list[dict[str, Any]] = []
    for _, _, name, p in _statements(dss_dir / "LineCode.txt"):
        codes[name.lower()] = {
            k: float(p.get(k, "0")) for k in ("r1", "x1", "r0", "x0", "c1", "c0")
        }
    trafo = _statements(dss_dir / "Transformers.txt")[0][3]
    kvs = [float(x) for x in _list(trafo["kvs"])]
    kvas = [float(x) for x in _list(trafo["kvas"])]
    lv_bus = _bus(_list(trafo["buses"])[1])[0]
    u_lv = kvs[1] * 1e3
    for _, _, name, p in _statements(dss_dir / "Lines.txt"):
        a, b = _bus(p["bus1"])[0], _bus(p["bus2"])[0]
        code = codes[p["linecode"].lower()]
        units = p.get("units", "km").lower()
        km = float(p["length"]) / (1000.0 if units == "m" else 1.0)
        nodes[a] = nodes[b] = u_lv
        lines.append(
            {
                "id": LINE_ID_OFFSET + int(re.sub(r"\D", "", name)),
                "from_node": a,
                "to_node": b,
                "from_status": 1,
                "to_status": 1,
                "r1": code["r1"] * km,
                "x1": code["x1"] * km,
                # OpenDSS gives C in nF/km; power-grid-model wants F.
                "c1": code["c1"] * km * 1e-9,
                "tan1": 0.0,
                "r0": code["r0"] * km,
                "x0": code["x0"] * km,
                "c0": code["c0"] * km * 1e-9,
                "tan0": 0.0,
                "i_n": float(p.get("normamps", DEFAULT_NORMAMPS)),
            }
        )
    nodes[lv_bus] = u_lv
    master = (dss_dir / "Master.dss").read_text()
    vs = {}
    for line in master.splitlines():
        m = _NEW.match(line.split("!")[0])
        if m and m.group(2).lower() == "vsource":
            vs = {k.lower(): v for k, v in _KV.findall(m.group(4))}
    base_kv = float(vs.get("basekv", "11"))
    isc3 = float(vs.get("isc3", "10000"))
    isc1 = float(vs.get("isc1", "10500"))
    z1 = base_kv * 1e3 / math.sqrt(3) / isc3
    z0 = max(3 * base_kv * 1e3 / math.sqrt(3) / isc1 - 2 * z1, z1)
    pct_r = [float(x) for x in _list(trafo.get("%rs", ""))] or [DEFAULT_PCT_R_WINDING] * 2
    xhl = float(trafo.get("xhl", "7")) / 100.0
    r_tot = sum(pct_r) / 100.0
    loads: list[DssLoad] = []
    asym = []
    for _, _, name, p in _statements(dss_dir / "Loads.txt"):
        node, phases = _bus(p["bus1"])
        ld = DssLoad(
            LOAD_ID_OFFSET + int(re.sub(r"\D", "", name)),
            node,
            phases[0] - 1,
            float(p["kw"]),
            float(p.get("pf", "0.88")),
            p.get("yearly", p.get("daily", "")),
        )
        loads.append(ld)
        pw = [0.0, 0.0, 0.0]
        qw = [0.0, 0.0, 0.0]
        pw[ld.phase] = ld.kw * 1e3
        qw[ld.phase] = ld.kw * 1e3 * math.tan(math.acos(ld.pf))
        asym.append(
            {
                "id": ld.load_id,
                "node": node,
                "status": 1,
                "type": 0,
                "p_specified": pw,
                "q_specified": qw,
            }
        )
    doc = {
        "version": "1.0",
        "type": "input",
        "is_batch": False,
        "attributes": {},
        "data": {
            "node": [{"id": SOURCE_NODE_ID, "u_rated": kvs[0] * 1e3}]
            + [{"id": n, "u_rated": u} for n, u in sorted(nodes.items())],
            "line": lines,
            "source": [
                {
                    "id": SOURCE_ID,
                    "node": SOURCE_NODE_ID,
                    "status": 1,
                    "u_ref": float(vs.get("pu", "1")),
                    "sk": math.sqrt(3) * base_kv * 1e3 * isc3,
                    "rx_ratio": 1.0 / DEFAULT_X1R1,
                    "z01_ratio": z0 / z1,
                }
            ],
            "transformer": [
                {
                    "id": TRANSFORMER_ID,
                    "from_node": SOURCE_NODE_ID,
                    "to_node": lv_bus,
                    "from_status": 1,
                    "to_status": 1,
                    "u1": kvs[0] * 1e3,
                    "u2": kvs[1] * 1e3,
                    "sn": kvas[0] * 1e3,
                    "uk": math.hypot(xhl, r_tot),
                    "pk": r_tot * kvas[0] * 1e3,
                    "i0": 0.0,
                    "p0": 0.0,
                    "winding_from": 2,
                    "winding_to": 1,
                    "clock": 1,
                    "tap_side": 0,
                    "tap_pos": 0,
                    "tap_min": 0,
                    "tap_max": 0,
                    "tap_nom": 0,
                    "tap_size": 0.0,
                }
            ],
            "asym_load": asym,
        },
    }
    return doc, loads


def shape_files(dss_dir: Path) -> dict[str, Path]:
    """Loadshape name (lower case) -> the file of its multipliers, from LoadShapes.txt."""
    out = {}
    for _, _, name, p in _statements(dss_dir / "LoadShapes.txt"):
        m = re.search(r"file=([^)\s]+)", p.get("mult", ""))
        if m:
            out[name.lower()] = dss_dir / m.group(1)
    return out


def write_profiles_csv(dss_dir: Path, loads: list[DssLoad], out: Path) -> None:
    """One column per load (its id), one row per minute: the load's kW, as OpenDSS multiplies
    its kW by the shape (the files' text is kept, so nothing is rounded)."""
    files = shape_files(dss_dir)
    cols = []
    for ld in loads:
        values = files[ld.shape.lower()].read_text().split()
        if ld.kw != 1.0:
            values = [repr(float(v) * ld.kw) for v in values]
        cols.append(values)
    rows = ["minute," + ",".join(str(ld.load_id) for ld in loads)]
    rows += [",".join([str(t), *(c[t] for c in cols)]) for t in range(len(cols[0]))]
    out.write_text("\n".join(rows) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: python tools/opendss_import.py DSS_DIR OUT.json [PROFILES.csv]\n")
        return 2
    doc, loads = convert(Path(argv[0]))
    Path(argv[1]).write_text(json.dumps(doc, indent=1) + "\n")
    if len(argv) == 3:
        write_profiles_csv(Path(argv[0]), loads, Path(argv[2]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
