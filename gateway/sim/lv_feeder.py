"""The IEEE European LV test feeder with every load known: ground truth for the estimator.

Each of the feeder's 55 single-phase households follows its own IEEE profile (one-minute kW,
interpolated within the minute, times seeded per-second noise, PF 0.95 inductive); a seeded fifth
of them (11 houses) also has PV (3 to 8 kWp, clear sky times passing clouds, unity PF). Every
instant is one exact load flow (:class:`gateway.native.loadflow.Feeder`) of the whole feeder.

Meters, same point names as :mod:`gateway.sim.feeder` (a drop-in model for
:class:`gateway.sim.grid_server.GridSimulator`):

- ``head`` at the LV busbar: what the transformer delivers into the feeder;
- ``cab1``..``cab3``: cable cabinets on the longest branch at about a quarter, half and three
  quarters of its length, each measuring the line leaving the cabinet away from the busbar
  (voltage at the cabinet, current and power through the line, positive away from the busbar).

``truth(t)`` returns every node voltage, so a test can score an estimate at unmeasured nodes;
:meth:`LvFeederModel.meter_locations` and :meth:`LvFeederModel.connections` give what a
distribution system operator would know (where its meters are; each house's node, phase, annual
energy from billing and PV kWp from registration) to write a ``[grid.estimation]`` config.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.grid.solar import clear_sky_ghi
from gateway.native.feeder_model import BASE_POWER_1P, FloatArray
from gateway.native.loadflow import Feeder, Loads
from gateway.native.loadflow_result import FlowResult
from gateway.sim.feeder import POINT_NAMES, _Clouds, _power_factor, _seed_rng

DATA: Final = Path(__file__).parent / "data"
FEEDER_JSON: Final = DATA / "ieee_eu_lv.json"
LOADS_CSV: Final = DATA / "ieee_eu_lv_loads.csv"
HEAD: Final = "head"
_DAY_S: Final = 86400.0
_TAN_PHI: Final = math.tan(math.acos(0.95))
_RNG_LOAD, _RNG_CLOUD, _RNG_STATIC = 11, 12, 14
__all__ = ["POINT_NAMES", "LvFeederModel", "LvTruth"]


@dataclass(frozen=True, eq=False)
class LvTruth:
    """The solved feeder at ``t``: node voltages (p.u., V), each load's P/Q and PV (W, var)."""

    t: float
    flow: FlowResult
    node_ids: npt.NDArray[np.int64]
    load_p_w: FloatArray  # [loads, 3] net of PV, consumption positive
    load_q_var: FloatArray
    pv_w: FloatArray  # [loads]

    @property
    def u_pu(self) -> FloatArray:
        return self.flow.u_pu

    @property
    def u_volts(self) -> FloatArray:
        return self.flow.u_volts


def _read_loads(path: Path) -> tuple[list[int], FloatArray]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    ids = [int(x) for x in rows[0][1:]]
    w = np.array([[float(x) for x in r[1:]] for r in rows[1:] if r], dtype=np.float64)
    return ids, w.T  # [loads, minutes]


class LvFeederModel:
    """Meter readings and ground truth of the IEEE EU LV feeder; see the module docstring."""

    def __init__(
        self,
        seed: int,
        start: float,
        *,
        feeder_path: Path = FEEDER_JSON,
        loads_path: Path = LOADS_CSV,
        load_noise: float = 0.03,
        pv_fraction: float = 0.2,
        cloudiness: float = 0.5,
        latitude_deg: float = 52.0,
        longitude_deg: float = 0.0,
        utc_offset_h: float = 0.0,
        pv_performance_ratio: float = 0.85,
        cabinets: int = 3,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed, self.start = seed, start
        self.feeder = Feeder.from_pgm_json(feeder_path, tol=1e-10)
        m = self.feeder.model
        ids, w = _read_loads(loads_path)
        col = {lid: i for i, lid in enumerate(ids)}
        self._w = w[[col[int(lid)] for lid in m.load_ids]]
        self.load_phase = np.argmax(np.abs(m.load_p), axis=1)
        self._noise, self._cloudiness = load_noise, cloudiness
        self._lat, self._lon, self._utc = latitude_deg, longitude_deg, utc_offset_h
        self._pr = pv_performance_ratio
        static = _seed_rng(seed, _RNG_STATIC, 0)
        n = m.n_loads
        with_pv = static.choice(n, size=round(pv_fraction * n), replace=False)
        self.pv_kwp = np.zeros(n)
        self.pv_kwp[with_pv] = np.round(static.uniform(3.0, 8.0, len(with_pv)), 1)
        self._clouds: dict[int, _Clouds] = {}
        self._cabinet_nodes = self._pick_cabinets(cabinets)
        self.meter_names: tuple[str, ...] = (
            HEAD,
            *(f"cab{k + 1}" for k in range(len(self._cabinet_nodes))),
        )
        self._energy = {name: [0.0, 0.0, 0.0, 0.0] for name in self.meter_names}
        self._last: tuple[float, FloatArray] | None = None

    # ---- what the operator knows -------------------------------------------------------------

    def _pick_cabinets(self, k: int) -> list[int]:
        """Node indices at the bottom of the metered lines along the deepest path."""
        m = self.feeder.model
        depth = np.zeros(m.n_nodes, dtype=np.int64)
        for i in range(1, m.n_nodes):
            depth[i] = depth[m.parent[i]] + 1
        path = [int(np.argmax(depth))]
        while path[-1] != 0:
            path.append(int(m.parent[path[-1]]))
        path.reverse()  # busbar first
        return [path[len(path) * (j + 1) // (k + 1)] for j in range(k)]

    def meter_locations(self) -> dict[str, dict[str, int | str]]:
        """Each meter's ``[grid.meters.NAME]`` location keys (node or line, phases)."""
        m = self.feeder.model
        out: dict[str, dict[str, int | str]] = {HEAD: {"node": int(m.node_ids[0])}}
        for name, node in zip(self.meter_names[1:], self._cabinet_nodes, strict=True):
            out[name] = {"line": int(m.line_ids[node - 1])}
        return out

    def connections(self) -> dict[str, dict[str, Any]]:
        """Each house as a ``[grid.estimation.connections.NAME]`` table: node, phase, annual
        energy (the day's energy times 365, as billing would show), PV kWp; PV is controllable."""
        m = self.feeder.model
        out: dict[str, dict[str, Any]] = {}
        for i, lid in enumerate(m.load_ids):
            entry: dict[str, Any] = {
                "node": int(m.node_ids[m.load_node[i]]),
                "phases": "abc"[int(self.load_phase[i])],
                "annual_kwh": round(float(self._w[i].sum()) / 60.0 / 1000.0 * 365.0, 1),
            }
            if self.pv_kwp[i] > 0:
                entry.update(
                    pv_kwp=float(self.pv_kwp[i]), controllable="pv", max_kw=float(self.pv_kwp[i])
                )
            out[f"load{int(lid)}"] = entry
        return out

    # ---- the truth ---------------------------------------------------------------------------

    def _day_clouds(self, day: int) -> _Clouds:
        clouds = self._clouds.get(day)
        if clouds is None:
            rng = _seed_rng(self.seed, _RNG_CLOUD, day)
            n = int(rng.poisson(80.0 * self._cloudiness))
            clouds = _Clouds(
                centre=rng.uniform(3.0 * 3600, 22.0 * 3600, n),
                half_width=rng.uniform(60.0, 480.0, n),
                depth=rng.uniform(0.3, 0.85, n),
            )
            if len(self._clouds) >= 2:
                self._clouds.pop(min(self._clouds))
            self._clouds[day] = clouds
        return clouds

    def _pv_w(self, t: float) -> FloatArray:
        ghi = clear_sky_ghi(t, self._lat, self._lon)
        if ghi <= 0.0:
            return np.zeros_like(self.pv_kwp)
        day = math.floor(t / _DAY_S)
        cloud = self._day_clouds(day).transmission(t - day * _DAY_S)
        out: FloatArray = self.pv_kwp * ghi * self._pr * cloud
        return out

    def _load_w(self, t: float) -> FloatArray:
        local = (t + self._utc * 3600.0) % _DAY_S
        minute = int(local // 60.0)
        frac = (local - 60.0 * minute) / 60.0
        w = self._w[:, minute] + frac * (self._w[:, (minute + 1) % 1440] - self._w[:, minute])
        noise = _seed_rng(self.seed, _RNG_LOAD, math.floor(t)).standard_normal(w.size)
        out: FloatArray = w * np.maximum(0.0, 1.0 + self._noise * noise)
        return out

    def truth(self, t: float) -> LvTruth:
        """The solved feeder at ``t``: a pure function of (seed, t)."""
        m = self.feeder.model
        load, pv = self._load_w(t), self._pv_w(t)
        rows = np.arange(m.n_loads)
        p = np.zeros((m.n_loads, 3))
        q = np.zeros((m.n_loads, 3))
        p[rows, self.load_phase] = load - pv
        q[rows, self.load_phase] = load * _TAN_PHI
        flow = self.feeder.solve(Loads(p, q))
        if not bool(flow.converged):
            raise RuntimeError(f"ground-truth load flow at t={t} did not converge")
        return LvTruth(t, flow, m.node_ids, p, q, pv)

    # ---- meters ------------------------------------------------------------------------------

    def _meter_vis(self, truth: LvTruth) -> tuple[FloatArray, FloatArray, Any]:
        """Per meter: voltage magnitude (V), current magnitude (A), complex power (VA)."""
        m = self.feeder.model
        f = truth.flow
        u = [np.abs(f.v[0]) * m.base_v]
        i = [np.abs(f.j[0]) * m.base_i]
        s = [f.v[0] * np.conj(f.j[0]) * BASE_POWER_1P]
        for node in self._cabinet_nodes:
            k = node - 1
            rev = bool(m.line_reversed[k])
            u.append(np.abs(f.v[m.parent[node]]) * m.base_v)
            i.append((f.i_to if rev else f.i_from)[k])
            s.append((f.s_to if rev else f.s_from)[k])
        return np.array(u), np.array(i), np.array(s)

    def step(self, t: float) -> dict[str, dict[str, float]]:
        """What every meter reads at ``t``; advances the energy counters to ``t``."""
        truth = self.truth(t)
        u, i, s = self._meter_vis(truth)
        totals = np.stack([s.real.sum(axis=1), s.imag.sum(axis=1)], axis=1)
        if self._last is not None and t > self._last[0]:
            kwh = 0.5 * (self._last[1] + totals) * (t - self._last[0]) / 3.6e6
            for j, name in enumerate(self.meter_names):
                c = self._energy[name]
                c[0 if kwh[j, 0] > 0 else 1] += abs(float(kwh[j, 0]))
                c[2 if kwh[j, 1] > 0 else 3] += abs(float(kwh[j, 1]))
        if self._last is None or t > self._last[0]:
            self._last = (t, totals)
        return self._readings(truth, u, i, s)

    def _readings(
        self, truth: LvTruth, u: FloatArray, i: FloatArray, s: Any
    ) -> dict[str, dict[str, float]]:
        f = truth.flow
        m = self.feeder.model
        out: dict[str, dict[str, float]] = {}
        for k, name in enumerate(self.meter_names):
            node = 0 if k == 0 else int(m.parent[self._cabinet_nodes[k - 1]])
            vph = f.v[node] * m.base_v
            values: dict[str, float] = {}
            for p in (1, 2, 3):
                sp = complex(s[k, p - 1])
                values[f"voltage_l{p}"] = float(u[k, p - 1])
                values[f"current_l{p}"] = float(i[k, p - 1])
                values[f"power_l{p}"] = sp.real
                values[f"reactive_power_l{p}"] = sp.imag
                values[f"apparent_power_l{p}"] = abs(sp)
                values[f"power_factor_l{p}"] = _power_factor(sp)
            for a, b in ((1, 2), (2, 3), (3, 1)):
                values[f"voltage_l{a}_l{b}"] = float(abs(vph[a - 1] - vph[b - 1]))
            total = complex(s[k].sum())
            values["current_sum"] = float(i[k].sum())
            values["current_avg"] = values["current_sum"] / 3.0
            values["current_neutral"] = 0.0  # the feeder model is Kron-reduced: no neutral wire
            values["voltage_avg"] = float(u[k].mean())
            values["power_total"] = total.real
            values["reactive_power_total"] = total.imag
            values["apparent_power_total"] = float(np.abs(s[k]).sum())
            apparent = values["apparent_power_total"]
            values["power_factor_total"] = total.real / apparent if apparent > 0 else 1.0
            values["frequency"] = 50.0
            imp, exp, q_imp, q_exp = self._energy[name]
            values["energy_import"], values["energy_export"] = imp, exp
            values["energy_total"] = imp + exp
            values["reactive_energy_import"], values["reactive_energy_export"] = q_imp, q_exp
            out[name] = values
        return out
