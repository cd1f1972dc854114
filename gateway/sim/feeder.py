"""A small radial LV feeder with metered cable cabinets: the ground truth the grid daemon reads.

Topology: the transformer's LV busbar (the *head*, node 0) feeds cable cabinets 1..N in series;
segment k is the cable from node k-1 to cabinet k. Houses hang single-phase (L1/L2/L3, unevenly)
off a cabinet; the short service cables are not modelled. Every node carries a meter:

- ``head`` at node 0 measures segment 1 (the whole feeder);
- a cabinet meter at node k measures its *incoming* segment k, i.e. everything behind the cabinet:
  its own houses, the cabinets further down and the cable losses between them.

Electrical model (a deliberately simple estimate; the load-flow kernel replaces it later):

- the head busbar is an ideal source: 230 V nominal at ``setpoint_pu`` with a slow seeded wander
  and a fixed, tiny per-phase imbalance from the MV side; phase angles 0, -120, +120 degrees;
- each segment is a 4-wire cable: series impedance Z per phase conductor and Zn for the neutral,
  self impedances only (mutual coupling is neglected), no shunt capacitance. The neutral is earthed
  at the transformer only, so unbalanced currents shift the neutral potential downstream: a
  phase-to-neutral voltage at cabinet k is ``Vphase_k - Vneutral_k`` with
  ``Vphase_k = Vphase_(k-1) - Z I_k`` and ``Vneutral_k = Vneutral_(k-1) + Zn (I_k1 + I_k2 + I_k3)``.
  A lightly loaded phase may therefore see its voltage rise while the heavy one drops;
- houses are constant-power loads (P, and Q from a 0.95 inductive power factor) minus PV at unity
  power factor; a fixed-point backward/forward sweep on complex phasors solves the feeder to 1 nV.

With this model, per phase and exactly (to the sweep tolerance), the head meter's active power is
the sum of the houses' net power on that phase plus the segment losses attributed to it,
``Re((Z I_p + Zn In) conj(I_p))``; summed over phases those are ``R |I_p|^2 + Rn |In|^2``.

Time series (all deterministic given ``seed``: every random draw is seeded by (seed, purpose, the
second or the day), so ``truth(t)`` does not depend on call order):

- household load: one IEEE European LV test feeder profile per house (one-minute kW), linearly
  interpolated within the minute, times a seeded per-second noise (``load_noise``, relative);
- PV: clear-sky irradiance from the sun's elevation (latitude, longitude, date; Haurwitz model)
  times the house's kWp and a performance ratio, times a cloud transmission: seeded passing clouds
  each day (raised-cosine dips, a few minutes long) that reach cabinets further out a bit later;
- frequency: 50 Hz with slow seeded swings and small per-second noise;
- energy counters: import/export kWh of each meter's total active power, integrated (trapezoid,
  steps of at most a minute) between successive :meth:`FeederModel.step` calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gateway.config.issues import IssueSink, join
from gateway.grid.solar import clear_sky_ghi
from gateway.sim.profiles_data import MINUTES_PER_DAY, ProfileSet, load_profiles

ComplexArray = npt.NDArray[np.complex128]
FloatArray = npt.NDArray[np.float64]

HEAD = "head"
PHASES = (1, 2, 3)
# Readings each meter produces (units: V, A, W, var, VA, Hz, kWh; power factor signed like P).
POINT_NAMES: tuple[str, ...] = (
    *(f"voltage_l{p}" for p in PHASES),
    "voltage_l1_l2",
    "voltage_l2_l3",
    "voltage_l3_l1",
    *(f"current_l{p}" for p in PHASES),
    "current_neutral",
    "current_sum",
    "current_avg",
    "voltage_avg",
    *(f"power_l{p}" for p in PHASES),
    *(f"reactive_power_l{p}" for p in PHASES),
    *(f"apparent_power_l{p}" for p in PHASES),
    *(f"power_factor_l{p}" for p in PHASES),
    "power_total",
    "reactive_power_total",
    "apparent_power_total",
    "power_factor_total",
    "frequency",
    "energy_import",
    "energy_export",
    "energy_total",
    "reactive_energy_import",
    "reactive_energy_export",
)

_SWEEP_TOL_V = 1e-9
_SWEEP_MAX_ITER = 50
_MAX_INTEGRATION_STEP_S = 60.0
_MAX_INTEGRATION_STEPS = 1440
_CLOUD_SPEED_M_S = 10.0
_DAY_S = 86400.0
# Seed-stream tags, so that no two random uses share a stream.
_RNG_LOAD, _RNG_CLOUD, _RNG_FREQ, _RNG_STATIC = 1, 2, 3, 4


@dataclass(frozen=True)
class House:
    """One household, connected single-phase (``phase`` 1..3) to its cabinet."""

    name: str
    phase: int
    profile: int  # number of the IEEE EU LV daily profile (see gateway/sim/data/README.md)
    pv_kwp: float = 0.0
    load_scale: float = 1.0


@dataclass(frozen=True)
class Cabinet:
    """A metered cable cabinet, ``length_m`` of cable after the previous node."""

    name: str
    length_m: float
    houses: tuple[House, ...]


@dataclass(frozen=True)
class Cable:
    """Series impedance per km of one conductor (defaults: NAYY 4x150 SE, 20 degC)."""

    r_ohm_km: float = 0.206
    x_ohm_km: float = 0.080
    rn_ohm_km: float = 0.206  # the neutral of a 4-core cable has the phase cross-section
    xn_ohm_km: float = 0.080


@dataclass(frozen=True)
class FeederConfig:
    """Everything that shapes the feeder; the defaults give a plausible suburban street."""

    cabinets: tuple[Cabinet, ...]
    cable: Cable = field(default_factory=Cable)
    nominal_v: float = 230.0
    setpoint_pu: float = 1.02
    setpoint_wander: float = 0.004  # relative amplitude of the slow head-voltage variation
    power_factor: float = 0.95  # household loads, inductive
    load_noise: float = 0.03  # relative standard deviation, drawn anew each second
    latitude_deg: float = 52.0
    longitude_deg: float = 0.0
    utc_offset_h: float = 0.0  # local time of the load profiles = UTC + this
    cloudiness: float = 0.5  # 0: clear sky all day; 1: about 80 passing clouds a day
    pv_performance_ratio: float = 0.85
    frequency_hz: float = 50.0


def default_feeder() -> FeederConfig:
    """Three cabinets, 13 houses (7 on L1, 4 on L2, 2 on L3), 6 with PV."""
    return FeederConfig(
        cabinets=(
            Cabinet(
                "cab1",
                120.0,
                (
                    House("h01", 1, 1),
                    House("h02", 1, 2, pv_kwp=5.0),
                    House("h03", 2, 3),
                    House("h04", 3, 4, pv_kwp=4.0),
                ),
            ),
            Cabinet(
                "cab2",
                150.0,
                (
                    House("h05", 1, 5),
                    House("h06", 1, 6, pv_kwp=6.0),
                    House("h07", 2, 7),
                    House("h08", 1, 8),
                    House("h09", 3, 9, pv_kwp=3.0),
                ),
            ),
            Cabinet(
                "cab3",
                100.0,
                (
                    House("h10", 1, 10, pv_kwp=8.0),
                    House("h11", 2, 11),
                    House("h12", 1, 12),
                    House("h13", 2, 13, pv_kwp=5.0),
                ),
            ),
        )
    )


@dataclass(frozen=True)
class HouseTruth:
    """One house at one instant: what it draws and what its PV makes (W, var)."""

    name: str
    cabinet: str
    phase: int
    p_load_w: float
    q_load_var: float
    p_pv_w: float

    @property
    def p_w(self) -> float:
        """Net active power drawn from the grid (negative while exporting)."""
        return self.p_load_w - self.p_pv_w

    @property
    def q_var(self) -> float:
        return self.q_load_var


@dataclass(frozen=True)
class FeederTruth:
    """The solved feeder at one instant.

    Arrays: ``node_voltage[k, p]`` phase-to-neutral phasor (V) at node k (0 = head) phase p+1;
    ``segment_current[k, p]`` phase current (A) of segment k+1, flowing away from the head;
    ``neutral_current[k]`` the neutral's return current of segment k+1 (sum of the phases);
    ``segment_z`` / ``neutral_z`` the series impedances (ohm) of each segment's conductors.
    """

    t: float
    houses: tuple[HouseTruth, ...]
    node_voltage: ComplexArray
    segment_current: ComplexArray
    neutral_current: ComplexArray
    segment_z: ComplexArray
    neutral_z: ComplexArray
    frequency_hz: float
    iterations: int

    def segment_losses_w(self) -> FloatArray:
        """Active losses per segment and phase, the neutral's share attributed by phase current."""
        drop = (
            self.segment_z[:, None] * self.segment_current
            + (self.neutral_z * self.neutral_current)[:, None]
        )
        return np.asarray((drop * np.conj(self.segment_current)).real, dtype=np.float64)


def _seed_rng(seed: int, tag: int, key: int) -> np.random.Generator:
    return np.random.default_rng([seed, tag, key])


@dataclass(frozen=True)
class _Clouds:
    """One day's passing clouds: centre (s of the UTC day), half-width (s), depth (0..1)."""

    centre: FloatArray
    half_width: FloatArray
    depth: FloatArray

    def transmission(self, second_of_day: float) -> float:
        if self.centre.size == 0:
            return 1.0
        x = np.abs(second_of_day - self.centre) / self.half_width
        dip = np.where(x < 1.0, self.depth * 0.5 * (1.0 + np.cos(np.pi * np.minimum(x, 1.0))), 0.0)
        return float(np.prod(1.0 - dip))


def _validate(config: FeederConfig, profiles: ProfileSet) -> None:
    sink = IssueSink("feeder config")
    if not config.cabinets:
        sink.error("cabinets", "a feeder needs at least one cabinet")
    names = {HEAD}
    for ci, cab in enumerate(config.cabinets):
        path = join("cabinets", ci)
        if cab.name in names:
            sink.error(join(path, "name"), f"duplicate meter name {cab.name!r}")
        names.add(cab.name)
        if not cab.length_m > 0:
            sink.error(join(path, "length_m"), f"must be > 0, got {cab.length_m}")
        for hi, house in enumerate(cab.houses):
            hpath = join(join(path, "houses"), hi)
            if house.name in names:
                sink.error(join(hpath, "name"), f"duplicate name {house.name!r}")
            names.add(house.name)
            if house.phase not in PHASES:
                sink.error(join(hpath, "phase"), f"must be 1, 2 or 3, got {house.phase}")
            if house.profile not in profiles.ids:
                sink.error(join(hpath, "profile"), f"no load profile {house.profile}")
            if house.pv_kwp < 0 or house.load_scale < 0:
                sink.error(hpath, "pv_kwp and load_scale must be >= 0")
    if not 0 < config.power_factor <= 1:
        sink.error("power_factor", f"must be in (0, 1], got {config.power_factor}")
    if not 0 <= config.cloudiness <= 1:
        sink.error("cloudiness", f"must be in [0, 1], got {config.cloudiness}")
    sink.raise_if_any()


class FeederModel:
    """The feeder's physics and time series; ``step`` yields what each meter reads.

    ``seed`` must be >= 0. ``start`` (epoch seconds) is where simulated time begins for a
    simulator driving this model; the model itself is valid at any ``t``.
    """

    def __init__(
        self,
        seed: int,
        start: float,
        config: FeederConfig | None = None,
        profiles: ProfileSet | None = None,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = seed
        self.start = start
        self.config = config if config is not None else default_feeder()
        self._profiles = profiles if profiles is not None else load_profiles()
        _validate(self.config, self._profiles)
        cfg = self.config
        self.meter_names: tuple[str, ...] = (HEAD, *(c.name for c in cfg.cabinets))
        houses = [(h, ci + 1, cab) for ci, cab in enumerate(cfg.cabinets) for h in cab.houses]
        self._houses: tuple[tuple[House, int, Cabinet], ...] = tuple(houses)
        self._node = np.array([n for _, n, _ in houses], dtype=np.intp)
        self._phase = np.array([h.phase - 1 for h, _, _ in houses], dtype=np.intp)
        self._kw = np.stack(
            [self._profiles.kw[self._profiles.index(h.profile)] for h, _, _ in houses]
        )
        self._scale = np.array([h.load_scale for h, _, _ in houses])
        self._kwp = np.array([h.pv_kwp for h, _, _ in houses])
        km = np.array([c.length_m for c in cfg.cabinets]) / 1000.0
        self._z = km * complex(cfg.cable.r_ohm_km, cfg.cable.x_ohm_km)
        self._zn = km * complex(cfg.cable.rn_ohm_km, cfg.cable.xn_ohm_km)
        # Clouds drift along the feeder: a cabinet further out sees the same cloud later.
        self._cloud_lag_s = np.cumsum(km * 1000.0)[self._node - 1] / _CLOUD_SPEED_M_S
        self._tan_phi = math.tan(math.acos(cfg.power_factor))
        static = _seed_rng(seed, _RNG_STATIC, 0)
        self._v_imbalance = 1.0 + 0.002 * static.standard_normal(3)
        self._wander_phase = static.uniform(0.0, 2.0 * math.pi, 4)
        # Meters are not new: counters start at seeded readings (kWh, kWh, kvarh, kvarh).
        self._energy = {
            name: [
                float(x) for x in static.uniform((1e3, 0.0, 300.0, 0.0), (5e4, 5e3, 1.5e4, 50.0))
            ]
            for name in self.meter_names
        }
        self._last_t: float | None = None
        self._last_totals: FloatArray | None = None
        self._clouds: dict[int, _Clouds] = {}

    # ---- inputs -----------------------------------------------------------------------------

    def _day_clouds(self, day: int) -> _Clouds:
        clouds = self._clouds.get(day)
        if clouds is None:
            rng = _seed_rng(self.seed, _RNG_CLOUD, day)
            n = int(rng.poisson(80.0 * self.config.cloudiness))
            clouds = _Clouds(
                centre=rng.uniform(3.0 * 3600, 22.0 * 3600, n),
                half_width=rng.uniform(60.0, 480.0, n),
                depth=rng.uniform(0.3, 0.85, n),
            )
            if len(self._clouds) >= 2:  # only today and yesterday are ever asked for
                self._clouds.pop(min(self._clouds))
            self._clouds[day] = clouds
        return clouds

    def _pv_w(self, t: float) -> FloatArray:
        cfg = self.config
        out = np.zeros(self._kwp.size)
        for i in np.flatnonzero(self._kwp):
            tl = t - float(self._cloud_lag_s[i])
            ghi = clear_sky_ghi(tl, cfg.latitude_deg, cfg.longitude_deg)
            if ghi <= 0.0:
                continue
            day = math.floor(tl / _DAY_S)
            cloud = self._day_clouds(day).transmission(tl - day * _DAY_S)
            out[i] = self._kwp[i] * 1000.0 * cfg.pv_performance_ratio * ghi / 1000.0 * cloud
        return out

    def _load_w(self, t: float) -> FloatArray:
        local = (t + self.config.utc_offset_h * 3600.0) % _DAY_S
        minute = int(local // 60.0)
        frac = (local - 60.0 * minute) / 60.0
        nxt = (minute + 1) % MINUTES_PER_DAY
        kw = self._kw[:, minute] + frac * (self._kw[:, nxt] - self._kw[:, minute])
        noise = _seed_rng(self.seed, _RNG_LOAD, math.floor(t)).standard_normal(kw.size)
        factor = np.maximum(0.0, 1.0 + self.config.load_noise * noise)
        return np.asarray(kw * 1000.0 * self._scale * factor, dtype=np.float64)

    def _head_voltage(self, t: float) -> ComplexArray:
        cfg = self.config
        ph = self._wander_phase
        wander = 0.6 * math.sin(2 * math.pi * t / 5400.0 + ph[0]) + 0.4 * math.sin(
            2 * math.pi * t / 1260.0 + ph[1]
        )
        mag = cfg.nominal_v * cfg.setpoint_pu * (1.0 + cfg.setpoint_wander * wander)
        angles = np.deg2rad(np.array([0.0, -120.0, 120.0]))
        return np.asarray(mag * self._v_imbalance * np.exp(1j * angles), dtype=np.complex128)

    def _frequency(self, t: float) -> float:
        ph = self._wander_phase
        noise = float(_seed_rng(self.seed, _RNG_FREQ, math.floor(t)).standard_normal())
        return (
            self.config.frequency_hz
            + 0.02 * math.sin(2 * math.pi * t / 900.0 + ph[2])
            + 0.008 * math.sin(2 * math.pi * t / 173.0 + ph[3])
            + 0.003 * noise
        )

    # ---- solve ------------------------------------------------------------------------------

    def truth(self, t: float) -> FeederTruth:
        """The solved feeder at ``t``: a pure function of (seed, config, t)."""
        p_load = self._load_w(t)
        q_load = p_load * self._tan_phi
        p_pv = self._pv_w(t)
        s_house = (p_load - p_pv) + 1j * q_load
        n_nodes = len(self.config.cabinets) + 1
        u0 = self._head_voltage(t)
        u = np.tile(u0, (n_nodes, 1))
        i_seg = np.zeros((n_nodes - 1, 3), dtype=np.complex128)
        i_n = np.zeros(n_nodes - 1, dtype=np.complex128)
        iterations = 0
        for iterations in range(1, _SWEEP_MAX_ITER + 1):  # noqa: B007 - reported in the truth
            i_house = np.conj(s_house / u[self._node, self._phase])
            inject = np.zeros((n_nodes, 3), dtype=np.complex128)
            np.add.at(inject, (self._node, self._phase), i_house)
            i_seg = np.cumsum(inject[:0:-1], axis=0)[::-1]  # segment k carries nodes >= k
            i_n = i_seg.sum(axis=1)
            v_phase = u0 - np.cumsum(self._z[:, None] * i_seg, axis=0)
            v_neutral = np.cumsum(self._zn * i_n)
            u_new = np.vstack([u0, v_phase - v_neutral[:, None]])
            change = float(np.max(np.abs(u_new - u)))
            u = u_new
            if change < _SWEEP_TOL_V:
                break
        houses = tuple(
            HouseTruth(
                h.name, cab.name, h.phase, float(p_load[i]), float(q_load[i]), float(p_pv[i])
            )
            for i, (h, _, cab) in enumerate(self._houses)
        )
        return FeederTruth(
            t=t,
            houses=houses,
            node_voltage=u,
            segment_current=i_seg,
            neutral_current=i_n,
            segment_z=self._z.astype(np.complex128),
            neutral_z=self._zn.astype(np.complex128),
            frequency_hz=self._frequency(t),
            iterations=iterations,
        )

    # ---- meters -----------------------------------------------------------------------------

    def _meter_currents(self, truth: FeederTruth) -> ComplexArray:
        """Current through each meter: head and cabinet k both see their incoming segment."""
        return np.vstack([truth.segment_current[:1], truth.segment_current])

    def _totals(self, truth: FeederTruth) -> FloatArray:
        """Total P (W) and Q (var) of each meter, shape (meters, 2)."""
        s = (truth.node_voltage * np.conj(self._meter_currents(truth))).sum(axis=1)
        return np.stack([s.real, s.imag], axis=1)

    def _integrate(self, t: float, totals: FloatArray) -> None:
        """Advance the energy counters from the last step to ``t`` (never backwards)."""
        if self._last_t is None or self._last_totals is None:
            self._last_t, self._last_totals = t, totals
            return
        if t <= self._last_t:
            return
        span = t - self._last_t
        n = min(_MAX_INTEGRATION_STEPS, max(1, math.ceil(span / _MAX_INTEGRATION_STEP_S)))
        prev, t0 = self._last_totals, self._last_t
        for k in range(1, n + 1):
            cur = totals if k == n else self._totals(self.truth(t0 + span * k / n))
            # Sub-steps are short, so splitting the mean power by its sign is close enough.
            kwh = 0.5 * (prev + cur) * (span / n) / 3.6e6  # kWh and kvarh
            for j, name in enumerate(self.meter_names):
                counters = self._energy[name]
                p, q = float(kwh[j, 0]), float(kwh[j, 1])
                counters[0 if p > 0 else 1] += abs(p)
                counters[2 if q > 0 else 3] += abs(q)
            prev = cur
        self._last_t, self._last_totals = t, totals

    def step(self, t: float) -> dict[str, dict[str, float]]:
        """What every meter reads at ``t``; advances the energy counters to ``t``."""
        truth = self.truth(t)
        self._integrate(t, self._totals(truth))
        return self.readings(truth)

    def readings(self, truth: FeederTruth) -> dict[str, dict[str, float]]:
        """Meter values for a solved feeder, with the energy counters as they stand."""
        u = truth.node_voltage
        i = self._meter_currents(truth)
        s = u * np.conj(i)
        out: dict[str, dict[str, float]] = {}
        for k, name in enumerate(self.meter_names):
            values: dict[str, float] = {}
            for p in PHASES:
                sp = s[k, p - 1]
                values[f"voltage_l{p}"] = float(abs(u[k, p - 1]))
                values[f"current_l{p}"] = float(abs(i[k, p - 1]))
                values[f"power_l{p}"] = float(sp.real)
                values[f"reactive_power_l{p}"] = float(sp.imag)
                values[f"apparent_power_l{p}"] = float(abs(sp))
                values[f"power_factor_l{p}"] = _power_factor(sp)
            for a, b in ((1, 2), (2, 3), (3, 1)):
                values[f"voltage_l{a}_l{b}"] = float(abs(u[k, a - 1] - u[k, b - 1]))
            total = complex(s[k].sum())  # plain complex: readings are plain floats
            values["current_neutral"] = float(abs(i[k].sum()))
            values["current_sum"] = float(np.abs(i[k]).sum())
            values["current_avg"] = values["current_sum"] / 3.0
            values["voltage_avg"] = float(np.abs(u[k]).mean())
            values["power_total"] = total.real
            values["reactive_power_total"] = total.imag
            values["apparent_power_total"] = float(np.abs(s[k]).sum())
            values["power_factor_total"] = (
                total.real / values["apparent_power_total"]
                if values["apparent_power_total"] > 0
                else 1.0
            )
            values["frequency"] = truth.frequency_hz
            imp, exp, q_imp, q_exp = self._energy[name]
            values["energy_import"], values["energy_export"] = imp, exp
            values["energy_total"] = imp + exp
            values["reactive_energy_import"], values["reactive_energy_export"] = q_imp, q_exp
            out[name] = values
        return out


def _power_factor(s: complex) -> float:
    mag = abs(s)
    return float(s.real / mag) if mag > 0 else 1.0
