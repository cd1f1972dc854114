"""Process models of a gas turbine and a biogas CHP engine: the ground truth behind the OPC UA sim.

The model is independent of OPC UA and runs in-process much faster than real time, so the anomaly
model can train on days of "normal operation" in seconds::

    plant = PlantModel("gas_turbine", seed=1, start=1_700_000_000.0)
    plant.inject(Fault("bearing_wear", onset=3600.0, rate=0.5))
    values = plant.step(1.0)   # {"power": 5012.3, "exhaust_temp_1": 497.1, ...}

Modelling choices (plausible, not a vendor's model; every lag is an exact exponential step, so
the result hardly depends on ``dt`` up to a minute):

- **Ambient:** a daily cosine (peak at 15:00 UTC) plus a seasonal cosine plus slow weather (an
  Ornstein-Uhlenbeck process, tau two days). The turbine's inlet follows it.
- **Gas turbine** (single shaft, 5.5 MW): the generator power follows the load setpoint with a
  ramp limit, capped by the ambient-dependent available power. Fuel follows from a heat rate that
  worsens at part load, at hot inlet and with compressor fouling; compressor discharge pressure
  from speed, load and inlet density; exhaust temperature from load and inlet temperature with
  a thermal lag. The six thermocouples share that mean, a fixed per-unit pattern and common
  turbulence, plus a small noise of their own. Lube oil temperature is a heat balance against a
  cooler; lube oil pressure follows speed and oil viscosity. Vibration grows with speed and load
  and peaks when the rotor passes its critical speed during starts and stops.
- **Biogas CHP** (500 kWe gas engine): the digester's gas fills a holder; the engine is gas-led
  (starts above 60 % level, stops below 25 %, full load above 35 %). Gas flow follows from the
  fuel power and the methane content; heat from a thermal efficiency that rises at part load; the
  coolant supply temperature from the return temperature plus heat over the circuit's capacity.
- **Noise** is correlated in time (OU processes) and shared where physics shares it (all
  thermocouples see the same turbulence; fuel and power see the same control jitter).
- **Faults** (:class:`Fault`) start at an onset and grow linearly at a rate per hour up to a
  limit: ``thermocouple_drift`` (°C/h on one channel), ``combustion`` (°C/h of cold spot on one
  burner, spread to its neighbours, the mean kept), ``bearing_wear`` (mm/s per hour of vibration,
  plus a little oil heat), ``compressor_fouling`` (fraction per hour of extra fuel for the same
  power, with lower discharge pressure and hotter exhaust), ``lube_oil_leak`` (bar/h of lost oil
  pressure), ``low_methane`` (percentage points per hour less methane in the biogas).
- **Operating events:** a dispatch schedule starts and stops the unit (turbine: most days from
  morning to late evening with setpoint changes; CHP: by gas holder level); random trips at
  ``trip_rate_per_day`` of running time, and protective trips when lube oil pressure or vibration
  cross their trip limits (CHP: methane too low to fire). ``starts`` and ``trips`` are counter tags.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from gateway.plant.tags import BIOGAS_CHP, GAS_TURBINE, PROFILES, TAGS, TagSpec

_DAY = 86_400.0
_HOUR = 3_600.0


class PlantState(IntEnum):
    """Operating state as the PLC reports it in the ``state`` tag."""

    OFF = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3
    TRIPPED = 4


# Which faults make sense on which plant, and the growth limit of each (in the rate's unit).
FAULT_KINDS: dict[str, tuple[str, ...]] = {
    GAS_TURBINE: (
        "thermocouple_drift",
        "combustion",
        "bearing_wear",
        "compressor_fouling",
        "lube_oil_leak",
    ),
    BIOGAS_CHP: ("bearing_wear", "lube_oil_leak", "low_methane"),
}
_FAULT_LIMIT: dict[str, float] = {
    "thermocouple_drift": 150.0,
    "combustion": 200.0,
    "bearing_wear": 30.0,
    "compressor_fouling": 0.3,
    "lube_oil_leak": 5.0,
    "low_methane": 30.0,
}


@dataclass(frozen=True)
class Fault:
    """A fault that starts at ``onset`` (s since the model's start) and grows by ``rate`` per hour.

    ``channel`` picks the thermocouple (1..6) or burner for ``thermocouple_drift`` and
    ``combustion``; ``limit`` caps the severity (a per-kind default when None).
    """

    kind: str
    onset: float
    rate: float
    channel: int = 1
    limit: float | None = None

    def severity(self, t: float) -> float:
        if t <= self.onset:
            return 0.0
        grown = self.rate * (t - self.onset) / _HOUR
        cap = self.limit if self.limit is not None else _FAULT_LIMIT[self.kind]
        return max(-cap, min(cap, grown))


@dataclass(frozen=True)
class PlantEvent:
    """A start, stop or trip, for checking maintenance counters against the truth."""

    t: float
    kind: str  # "start", "stop", "trip"
    cause: str


class _Ou:
    """Ornstein-Uhlenbeck noise: stationary std ``sigma``, correlation time ``tau`` (exact step)."""

    __slots__ = ("_rng", "sigma", "tau", "x")

    def __init__(self, rng: random.Random, sigma: float, tau: float) -> None:
        self._rng = rng
        self.sigma = sigma
        self.tau = tau
        self.x = rng.gauss(0.0, sigma)

    def step(self, dt: float) -> float:
        a = math.exp(-dt / self.tau)
        self.x = self.x * a + self.sigma * math.sqrt(1.0 - a * a) * self._rng.gauss(0.0, 1.0)
        return self.x


def _lag(x: float, target: float, dt: float, tau: float) -> float:
    return target + (x - target) * math.exp(-dt / tau)


def _ramp(x: float, target: float, max_step: float) -> float:
    if target > x:
        return min(target, x + max_step)
    return max(target, x - max_step)


class _Ambient:
    """Outdoor temperature: daily and seasonal cosines plus slow weather."""

    def __init__(self, rng: random.Random, mean: float) -> None:
        self._mean = mean
        self._weather = _Ou(rng, 3.0, 2 * _DAY)

    def step(self, dt: float, epoch: float) -> float:
        hour = (epoch % _DAY) / _HOUR
        day_of_year = (epoch / _DAY) % 365.25
        seasonal = -9.0 * math.cos(2 * math.pi * (day_of_year - 15.0) / 365.25)
        daily = 4.5 * math.cos(2 * math.pi * (hour - 15.0) / 24.0)
        return self._mean + seasonal + daily + self._weather.step(dt)


class _Process:
    """What both plant models share: state machine, counters, events, trips."""

    def __init__(self, rng: random.Random, trip_rate_per_day: float) -> None:
        self.rng = rng
        self.state = PlantState.OFF
        self.starts = 0
        self.trips = 0
        self.events: deque[PlantEvent] = deque(maxlen=10_000)
        self.trip_rate = trip_rate_per_day / _DAY
        self.state_since = 0.0
        self.speed = 0.0  # fraction of rated

    def _enter(self, t: float, state: PlantState) -> None:
        self.state = state
        self.state_since = t

    def start(self, t: float, cause: str) -> None:
        if self.state is PlantState.OFF:
            self.starts += 1
            self.events.append(PlantEvent(t, "start", cause))
            self._enter(t, PlantState.STARTING)

    def stop(self, t: float, cause: str) -> None:
        if self.state in (PlantState.STARTING, PlantState.RUNNING):
            self.events.append(PlantEvent(t, "stop", cause))
            self._enter(t, PlantState.STOPPING)

    def trip(self, t: float, cause: str) -> None:
        if self.state in (PlantState.STARTING, PlantState.RUNNING, PlantState.STOPPING):
            self.trips += 1
            self.events.append(PlantEvent(t, "trip", cause))
            self._enter(t, PlantState.TRIPPED)

    def random_trip(self, t: float, dt: float) -> None:
        if self.state is PlantState.RUNNING and self.rng.random() < self.trip_rate * dt:
            self.trip(t, "random")

    def _spin(self, t: float, dt: float, overshoot: float, tau_up: float, tau_down: float) -> None:
        """Shaft speed: a start drives towards ``overshoot`` (a little above rated, so rated is
        reached in finite time) and enters RUNNING there; every other state coasts down."""
        if self.state is PlantState.STARTING:
            self.speed = _lag(self.speed, overshoot, dt, tau_up)
            if self.speed >= 1.0:
                self.speed = 1.0
                self._enter(t, PlantState.RUNNING)
        elif self.state is PlantState.RUNNING:
            self.speed = 1.0
        else:
            self.speed = _lag(self.speed, 0.0, dt, tau_down)

    @property
    def spinning(self) -> bool:
        return self.state in (PlantState.STARTING, PlantState.RUNNING)


class _GasTurbine(_Process):
    RATED_KW = 5_500.0
    RATED_RPM = 15_000.0
    EFF_NOM = 0.31
    LHV_KWH_PER_KG = 13.9
    PR_NOM = 12.0
    TRIP_OIL_BAR = 1.0
    TRIP_VIBRATION = 25.0

    def __init__(self, rng: random.Random, trip_rate_per_day: float, ambient_mean: float) -> None:
        super().__init__(rng, trip_rate_per_day)
        self.ambient = _Ambient(rng, ambient_mean)
        self.load = 0.0  # fraction of rated power
        self.setpoint = 80.0  # percent
        self.exhaust = 15.0
        self.oil_temp = 30.0
        self.oil_pressure = 0.3
        self.cdp = 1.013
        # A unit's burners are never identical: a fixed pattern around the mean, zero sum.
        pattern = [rng.uniform(-5.0, 5.0) for _ in range(6)]
        mean = sum(pattern) / 6
        self.tc_pattern = [p - mean for p in pattern]
        self.turbulence = _Ou(rng, 1.5, 8.0)
        self.tc_noise = [_Ou(rng, 0.7, 3.0) for _ in range(6)]
        self.control = _Ou(rng, 0.004, 20.0)  # load jitter shared by power and fuel
        self.vib_noise = _Ou(rng, 0.07, 15.0)
        self.oil_noise = _Ou(rng, 0.015, 5.0)
        self.inlet_noise = _Ou(rng, 0.15, 120.0)
        # Dispatch: today's window and the time of the next setpoint change.
        self.day = -1
        self.window = (0.0, 0.0)
        self.next_change = 0.0

    def _plan_day(self, epoch: float) -> None:
        day = int(epoch // _DAY)
        if day == self.day:
            return
        self.day = day
        base = day * _DAY
        if self.rng.random() < 0.85:
            on = base + self.rng.uniform(5.0, 7.0) * _HOUR
            off = base + self.rng.uniform(21.0, 23.0) * _HOUR
            self.window = (on, off)
        else:
            self.window = (0.0, 0.0)

    def dispatch(self, t: float, epoch: float) -> None:
        self._plan_day(epoch)
        wanted = self.window[0] <= epoch < self.window[1]
        if wanted and self.state is PlantState.OFF:
            self.start(t, "dispatch")
        elif not wanted and self.state in (PlantState.STARTING, PlantState.RUNNING):
            self.stop(t, "dispatch")
        if t >= self.next_change:
            self.setpoint = round(self.rng.uniform(45.0, 100.0), 1)
            self.next_change = t + self.rng.expovariate(1.0 / (45 * 60.0))

    def settle(self, epoch: float, running: bool) -> None:
        """Start in equilibrium (running at the setpoint, or cold) instead of mid-transient."""
        t_in = self.ambient.step(1.0, epoch)
        if running:
            self._enter(0.0, PlantState.RUNNING)
            self.speed = 1.0
            self.load = self.setpoint / 100.0 * self._available(t_in)
        targets = self._targets(t_in, {})
        self.exhaust, self.oil_temp, self.oil_pressure, self.cdp = targets

    def _available(self, t_in: float) -> float:
        return max(0.5, min(1.05, 1.0 - 0.0075 * (t_in - 15.0)))

    def _targets(self, t_in: float, sev: dict[str, float]) -> tuple[float, float, float, float]:
        s, load = self.speed, self.load
        fouling = sev.get("compressor_fouling", 0.0)
        exhaust = t_in + s * (250.0 + 230.0 * load) * (1.0 + 0.15 * fouling)
        heat = s * s * (0.7 + 0.3 * load)
        oil_temp = 30.0 + 0.35 * (t_in - 15.0) + 25.0 * heat + 1.2 * sev.get("bearing_wear", 0.0)
        oil_pressure = (0.3 + 2.2 * s) * (1.0 - 0.006 * (self.oil_temp - 55.0))
        oil_pressure = max(0.0, oil_pressure - sev.get("lube_oil_leak", 0.0))
        density = 288.15 / (t_in + 273.15)
        pr = 1.0 + (self.PR_NOM - 1.0) * s * s * (0.6 + 0.4 * load) * density
        cdp = 1.013 * (1.0 + (pr - 1.0) * (1.0 - 0.5 * fouling))
        return exhaust, oil_temp, oil_pressure, cdp

    def step(self, t: float, dt: float, epoch: float, sev: dict[str, float]) -> dict[str, float]:
        t_in = self.ambient.step(dt, epoch) + 0.5 + self.inlet_noise.step(dt)
        state = self.state
        # Speed: starter/fuel bring the shaft up in a few minutes; it coasts down more slowly.
        self._spin(t, dt, overshoot=1.02, tau_up=70.0, tau_down=90.0)
        # Load: ramp limit 10 %/min; unloaded at once on a trip.
        if state is PlantState.RUNNING:
            target = self.setpoint / 100.0 * self._available(t_in)
            self.load = _ramp(self.load, target, 0.1 / 60.0 * dt)
        elif state is PlantState.TRIPPED:
            self.load = 0.0
        else:
            self.load = _ramp(self.load, 0.0, 0.2 / 60.0 * dt)
        if state is PlantState.STOPPING and self.speed < 0.01:
            self._enter(t, PlantState.OFF)
        if state is PlantState.TRIPPED and self.speed < 0.01 and t - self.state_since > 1800.0:
            self._enter(t, PlantState.OFF)

        exhaust_t, oil_t, oil_p, cdp_t = self._targets(t_in, sev)
        self.exhaust = _lag(self.exhaust, exhaust_t, dt, 40.0 if self.speed > 0.5 else 400.0)
        self.oil_temp = _lag(self.oil_temp, oil_t, dt, 600.0)
        self.oil_pressure = _lag(self.oil_pressure, oil_p, dt, 2.0)
        self.cdp = _lag(self.cdp, cdp_t, dt, 2.0)

        jitter = self.control.step(dt) * self.speed
        load = max(0.0, self.load * (1.0 + jitter))
        s = self.speed
        fouling = sev.get("compressor_fouling", 0.0)
        fuel_kw = (
            self.RATED_KW
            / self.EFF_NOM
            * (0.15 * s * s + 0.85 * load)
            * (1.0 + 0.001 * (t_in - 15.0))
            * (1.0 + fouling)
        )
        turbulence = self.turbulence.step(dt) * s
        cold = sev.get("combustion", 0.0) * min(1.0, s * 1.5)
        temps = []
        burner = _channel(sev, "combustion_channel")
        drifting = _channel(sev, "thermocouple_drift_channel")
        for i in range(6):
            tc = self.exhaust + self.tc_pattern[i] * s + turbulence + self.tc_noise[i].step(dt)
            if cold:
                dist = min((i - burner) % 6, (burner - i) % 6)
                # Swirl smears a weak burner's cold spot onto its neighbours; the mean is kept.
                tc += cold * (-1.0 if dist == 0 else -0.35 if dist == 1 else 1.7 / 3.0)
            if i == drifting:
                tc += sev.get("thermocouple_drift", 0.0)
            temps.append(tc)
        critical = 2.0 * math.exp(-(((s - 0.55) / 0.05) ** 2))
        wear = sev.get("bearing_wear", 0.0)
        vibration = s * s * (1.2 + 0.6 * load + wear) + critical + self.vib_noise.step(dt) * s
        vibration = max(0.02, vibration)
        oil_pressure = max(0.0, self.oil_pressure + self.oil_noise.step(dt))

        if self.spinning and oil_pressure < self.TRIP_OIL_BAR and s > 0.5:
            self.trip(t, "low lube oil pressure")
        elif self.spinning and vibration > self.TRIP_VIBRATION:
            self.trip(t, "high vibration")
        else:
            self.random_trip(t, dt)

        out = {
            "state": float(self.state),
            "load_setpoint": self.setpoint,
            "shaft_speed": s * self.RATED_RPM * (1.0 + 0.075 * jitter if s > 0.99 else 1.0),
            "power": load * self.RATED_KW,
            "fuel_flow": fuel_kw / self.LHV_KWH_PER_KG,
            "cdp": self.cdp * (1.0 + 0.5 * jitter),
        }
        for i, tc in enumerate(temps, start=1):
            out[f"exhaust_temp_{i}"] = tc
        out["bearing_vibration"] = vibration
        out["lube_oil_temp"] = self.oil_temp
        out["lube_oil_pressure"] = oil_pressure
        out["inlet_temp"] = t_in
        out["starts"] = float(self.starts)
        out["trips"] = float(self.trips)
        return out


def _channel(sev: dict[str, float], key: str) -> int:
    return int(sev.get(key, 1.0)) - 1


class _BiogasChp(_Process):
    RATED_KW = 500.0
    RATED_RPM = 1_500.0
    HOLDER_M3 = 1_500.0
    CH4_KWH_PER_M3 = 9.97
    CIRCUIT_KW_PER_K = 28.0
    TRIP_OIL_BAR = 1.5
    TRIP_VIBRATION = 20.0

    def __init__(self, rng: random.Random, trip_rate_per_day: float, ambient_mean: float) -> None:
        super().__init__(rng, trip_rate_per_day)
        self.ambient = _Ambient(rng, ambient_mean)
        self.load = 0.0
        self.setpoint = 100.0
        self.holder = 0.45 * self.HOLDER_M3
        self.heat = 0.0
        self.exhaust = 20.0
        self.oil_temp = 40.0
        self.oil_pressure = 0.5
        self.supply = 65.0
        self.production_noise = _Ou(rng, 10.0, _HOUR)
        self.methane_noise = _Ou(rng, 1.2, 6 * _HOUR)
        self.return_noise = _Ou(rng, 1.0, 1800.0)
        self.control = _Ou(rng, 0.005, 15.0)
        self.vib_noise = _Ou(rng, 0.08, 10.0)
        self.oil_noise = _Ou(rng, 0.03, 5.0)
        self.exhaust_noise = _Ou(rng, 2.0, 20.0)

    def dispatch(self, t: float, epoch: float) -> None:
        level = 100.0 * self.holder / self.HOLDER_M3
        if self.state is PlantState.OFF and level > 60.0:
            self.start(t, "gas holder full")
        elif self.spinning and level < 25.0:
            self.stop(t, "gas holder low")
        self.setpoint = 100.0 if level > 35.0 else 80.0

    def settle(self, epoch: float, running: bool) -> None:
        if running:
            self._enter(0.0, PlantState.RUNNING)
            self.speed = 1.0
            self.load = self.setpoint / 100.0
            self.heat = self._fuel_kw(self.load) * self._eff_th(self.load)
            self.exhaust = 450.0 + 80.0 * self.load
            self.oil_temp = 70.0 + 15.0 * self.load
            self.oil_pressure = 4.5
            ambient = self.ambient.step(1.0, epoch)
            self.supply = 62.0 + 0.15 * (15.0 - ambient) + self.heat / self.CIRCUIT_KW_PER_K

    def _eff_el(self, load: float) -> float:
        return 0.40 - 0.16 * (1.0 - load) ** 2

    def _eff_th(self, load: float) -> float:
        return 0.45 + 0.10 * (1.0 - load) ** 2

    def _fuel_kw(self, load: float) -> float:
        if load <= 0.0:
            return 0.08 * self.RATED_KW / self._eff_el(1.0) * self.speed
        return load * self.RATED_KW / self._eff_el(load)

    def step(self, t: float, dt: float, epoch: float, sev: dict[str, float]) -> dict[str, float]:
        ambient = self.ambient.step(dt, epoch)
        hour = (epoch % _DAY) / _HOUR
        # Feeding the digester in the morning raises gas production during the day.
        production = 160.0 * (1.0 + 0.1 * math.cos(2 * math.pi * (hour - 14.0) / 24.0))
        production = max(0.0, production + self.production_noise.step(dt))
        methane = 55.0 + self.methane_noise.step(dt) - sev.get("low_methane", 0.0)
        methane = max(5.0, methane)
        state = self.state
        self._spin(t, dt, overshoot=1.05, tau_up=6.0, tau_down=4.0)
        # Lean gas knocks/misfires: the engine controller derates below about 48 % methane.
        derate = max(0.0, min(1.0, (methane - 40.0) / 8.0))
        if state is PlantState.RUNNING:
            self.load = _ramp(self.load, self.setpoint / 100.0 * derate, 0.5 / 60.0 * dt)
        elif state is PlantState.TRIPPED:
            self.load = 0.0
        else:
            self.load = _ramp(self.load, 0.0, 1.0 / 60.0 * dt)
        if state is PlantState.STOPPING and self.speed < 0.01:
            self._enter(t, PlantState.OFF)
        if state is PlantState.TRIPPED and self.speed < 0.01 and t - self.state_since > 900.0:
            self._enter(t, PlantState.OFF)

        jitter = self.control.step(dt) * self.speed
        load = max(0.0, self.load * (1.0 + jitter))
        fuel_kw = self._fuel_kw(load) if self.speed > 0.01 else 0.0
        gas_flow = fuel_kw / (methane / 100.0 * self.CH4_KWH_PER_M3)
        volume = self.holder + (production - gas_flow) * dt / _HOUR
        # A full holder flares the surplus; an empty one starves the engine (it trips below).
        self.holder = max(0.0, min(self.HOLDER_M3, volume))
        self.heat = _lag(self.heat, fuel_kw * self._eff_th(load), dt, 180.0)
        return_temp = 62.0 + 0.15 * (15.0 - ambient) + self.return_noise.step(dt)
        self.supply = _lag(self.supply, return_temp + self.heat / self.CIRCUIT_KW_PER_K, dt, 120.0)
        running = self.speed > 0.5
        lean = 2.0 * max(0.0, 50.0 - methane)
        exhaust_target = (450.0 + 80.0 * load - lean) if running else ambient + 20.0
        self.exhaust = _lag(self.exhaust, exhaust_target, dt, 60.0 if running else 900.0)
        wear = sev.get("bearing_wear", 0.0)
        oil_target = (70.0 + 15.0 * load + 1.0 * wear) * self.speed + 40.0 * (1.0 - self.speed)
        self.oil_temp = _lag(self.oil_temp, oil_target, dt, 900.0)
        oil_p = (0.5 + 4.0 * self.speed) * (1.0 - 0.005 * (self.oil_temp - 85.0))
        oil_p = max(0.0, oil_p - sev.get("lube_oil_leak", 0.0))
        self.oil_pressure = _lag(self.oil_pressure, oil_p, dt, 2.0)
        oil_pressure = max(0.0, self.oil_pressure + self.oil_noise.step(dt))
        vibration = self.speed * (2.0 + 1.0 * load + wear) + self.vib_noise.step(dt) * self.speed
        vibration = max(0.02, vibration)

        if self.spinning and running and oil_pressure < self.TRIP_OIL_BAR:
            self.trip(t, "low lube oil pressure")
        elif self.spinning and vibration > self.TRIP_VIBRATION:
            self.trip(t, "high vibration")
        elif self.spinning and (methane < 40.0 or self.holder <= 0.0):
            self.trip(t, "misfire: gas too lean or holder empty")
        else:
            self.random_trip(t, dt)

        return {
            "state": float(self.state),
            "power_setpoint": self.setpoint,
            "engine_speed": self.speed * self.RATED_RPM * (1.0 + 0.05 * jitter),
            "engine_power": load * self.RATED_KW,
            "heat_power": self.heat,
            "gas_flow": gas_flow,
            "methane_content": methane,
            "gas_holder_level": 100.0 * self.holder / self.HOLDER_M3,
            "coolant_supply_temp": self.supply,
            "coolant_return_temp": return_temp,
            "exhaust_temp": self.exhaust + self.exhaust_noise.step(dt) * self.speed,
            "bearing_vibration": vibration,
            "lube_oil_temp": self.oil_temp,
            "lube_oil_pressure": oil_pressure,
            "ambient_temp": ambient,
            "starts": float(self.starts),
            "trips": float(self.trips),
        }


class PlantModel:
    """One simulated plant: ``step(dt)`` advances it and returns every tag's value.

    ``start`` is the wall-clock epoch of t=0 (it sets time of day and season). With
    ``dispatch=True`` the plant starts, stops and changes load by itself; otherwise it waits for
    :meth:`command_start`, :meth:`command_stop` and :meth:`set_load`; ``running=True`` starts it
    warm at its setpoint instead of cold. Deterministic given ``seed``
    and the same sequence of calls.
    """

    def __init__(
        self,
        profile: str,
        seed: int = 0,
        start: float = 1_700_000_000.0,
        *,
        faults: Iterable[Fault] = (),
        dispatch: bool = True,
        trip_rate_per_day: float = 0.02,
        ambient_mean: float = 11.0,
        running: bool | None = None,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown plant profile {profile!r} (known: {', '.join(PROFILES)})")
        self.profile = profile
        self.start = start
        self.t = 0.0
        self.dispatch = dispatch
        self._faults: list[Fault] = []
        rng = random.Random(f"{profile}:{seed}")
        self._process: _GasTurbine | _BiogasChp
        if profile == GAS_TURBINE:
            self._process = _GasTurbine(rng, trip_rate_per_day, ambient_mean)
        else:
            self._process = _BiogasChp(rng, trip_rate_per_day, ambient_mean)
        for fault in faults:
            self.inject(fault)
        # Start in equilibrium: running if asked to (or if the dispatch wants it now), else cold.
        wanted = running if running is not None else dispatch and self._wants_running(start)
        self._process.settle(start, wanted)
        self.last: dict[str, float] = {}

    def _wants_running(self, epoch: float) -> bool:
        process = self._process
        if isinstance(process, _GasTurbine):
            process._plan_day(epoch)
            return process.window[0] <= epoch < process.window[1]
        return True

    @property
    def tags(self) -> tuple[TagSpec, ...]:
        return TAGS[self.profile]

    @property
    def tag_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in TAGS[self.profile])

    @property
    def state(self) -> PlantState:
        return self._process.state

    @property
    def events(self) -> Sequence[PlantEvent]:
        return tuple(self._process.events)

    @property
    def faults(self) -> tuple[Fault, ...]:
        return tuple(self._faults)

    def inject(self, fault: Fault) -> None:
        """Add a fault (its onset is in model seconds, so it may lie in the past or future)."""
        if fault.kind not in FAULT_KINDS[self.profile]:
            known = ", ".join(FAULT_KINDS[self.profile])
            raise ValueError(f"fault {fault.kind!r} does not apply to {self.profile} ({known})")
        if fault.kind in ("thermocouple_drift", "combustion") and not 1 <= fault.channel <= 6:
            raise ValueError(f"fault channel must be 1..6, got {fault.channel}")
        self._faults.append(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def severities(self, t: float | None = None) -> dict[str, float]:
        """Each active fault kind's severity at ``t`` (default now): the ground truth."""
        when = self.t if t is None else t
        sev: dict[str, float] = {}
        for fault in self._faults:
            s = fault.severity(when)
            if s:
                sev[fault.kind] = sev.get(fault.kind, 0.0) + s
                sev[f"{fault.kind}_channel"] = float(fault.channel)
        return sev

    def command_start(self) -> None:
        self._process.start(self.t, "command")

    def command_stop(self) -> None:
        self._process.stop(self.t, "command")

    def trip(self, cause: str = "command") -> None:
        self._process.trip(self.t, cause)

    def set_load(self, percent: float) -> None:
        self._process.setpoint = max(0.0, min(100.0, percent))

    def step(self, dt: float) -> dict[str, float]:
        """Advance by ``dt`` seconds (> 0) and return every tag's value at the new time."""
        if not dt > 0.0:
            raise ValueError(f"dt must be positive, got {dt}")
        self.t += dt
        epoch = self.start + self.t
        if self.dispatch:
            self._process.dispatch(self.t, epoch)
        values = self._process.step(self.t, dt, epoch, self.severities() if self._faults else {})
        self.last = values
        return values

    def run(
        self, n: int, dt: float = 1.0
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``n`` steps at once: (times since start, shape (n,); values, shape (n, len(tags)))."""
        names = self.tag_names
        times = np.empty(n, dtype=np.float64)
        values = np.empty((n, len(names)), dtype=np.float64)
        for k in range(n):
            row = self.step(dt)
            times[k] = self.t
            values[k] = [row[name] for name in names]
        return times, values


__all__ = [
    "BIOGAS_CHP",
    "FAULT_KINDS",
    "GAS_TURBINE",
    "PROFILES",
    "TAGS",
    "Fault",
    "PlantEvent",
    "PlantModel",
    "PlantState",
    "TagSpec",
]
