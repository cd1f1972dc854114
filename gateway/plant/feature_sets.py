"""What the anomaly model sees of each plant profile: derived features and their subsystems.

Features are chosen so that each fault family has a feature of its own, which is what lets the
per-feature reconstruction error name a subsystem:

- **Exhaust thermocouples** (gas turbine). The six channels' deviations from their mean, less the
  unit's fixed burner pattern (learnt from training data, kept in the sidecar), are residuals
  ``r``. Let ``k`` be the channel with the largest ``|r|``. A thermocouple fault moves channel
  ``k`` alone; a burner (combustion) fault moves ``k`` *and* its two neighbours the same way,
  because the swirl smears a burner's hot or cold spot onto the adjacent thermocouples (the
  "adjacent spreads" rule of gas turbine combustion monitors). Hence two features:
  ``tc_outlier = s * (r_k - n / c)`` (zero for a burner pattern, ``n`` the neighbours' mean
  residual and ``c`` the swirl coupling, a unit parameter) -> "exhaust spread", and
  ``burner_pattern = s * (n - f)`` (``f`` the three far channels' mean; zero for a single channel)
  -> "fuel/combustion"; ``s`` is the sign of ``r_k``.
- **Performance** (gas turbine): fuel flow, compressor discharge pressure and mean exhaust
  temperature against load and inlet temperature -> "compressor" (fouling needs more fuel for the
  same power at a lower pressure ratio and a hotter exhaust).
- **Gas quality** (CHP): methane content and gas flow per power.
- Bearing vibration -> "bearing"; lube oil pressure and temperature -> "lube oil"; load, inlet or
  ambient temperature -> "operation" (the operating point the others are conditioned on).

Scope: the model is trained on, and scores, steady running only: state RUNNING for at least
``settle_s`` (the lube oil temperature lags a start by tens of minutes, which is normal and not
what the model is for; the rules cover starts). Out of scope the features are NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from gateway.plant.features import FloatArray
from gateway.plant.tflite import ModelError

RUNNING_STATE: Final = 2.0  # the PLC's state tag (gateway.sim.plant.PlantState.RUNNING)
GAS_TURBINE: Final = "gas_turbine"
BIOGAS_CHP: Final = "biogas_chp"
_TC_TAGS: Final = tuple(f"exhaust_temp_{i}" for i in range(1, 7))


@dataclass(frozen=True)
class Feature:
    name: str
    subsystem: str
    unit: str = ""


GT_FEATURES: Final = (
    Feature("load", "operation", "1"),
    Feature("inlet_temp", "operation", "°C"),
    Feature("fuel_flow", "compressor", "kg/h"),
    Feature("cdp", "compressor", "bar"),
    Feature("exhaust_mean", "compressor", "°C"),
    Feature("tc_outlier", "exhaust spread", "°C"),
    Feature("burner_pattern", "fuel/combustion", "°C"),
    Feature("bearing_vibration", "bearing", "mm/s"),
    Feature("lube_oil_temp", "lube oil", "°C"),
    Feature("lube_oil_pressure", "lube oil", "bar"),
)

CHP_FEATURES: Final = (
    Feature("load", "operation", "1"),
    Feature("ambient_temp", "operation", "°C"),
    Feature("coolant_return_temp", "operation", "°C"),
    Feature("heat_power", "cooling circuit", "kW"),
    Feature("coolant_rise", "cooling circuit", "K"),
    Feature("methane_content", "gas quality", "%"),
    Feature("gas_flow", "gas quality", "m³/h"),
    Feature("exhaust_temp", "fuel/combustion", "°C"),
    Feature("bearing_vibration", "bearing", "mm/s"),
    Feature("lube_oil_temp", "lube oil", "°C"),
    Feature("lube_oil_pressure", "lube oil", "bar"),
)


@dataclass
class FeatureSet:
    """One profile's feature extraction. Stateful only in its scope gate (time since RUNNING)."""

    profile: str
    features: tuple[Feature, ...]
    rated_kw: float
    settle_s: float
    tc_pattern: tuple[float, ...] = (0.0,) * 6
    swirl_coupling: float = 0.35
    _running_since: float | None = field(default=None, repr=False)

    def params(self) -> dict[str, Any]:
        """The fitted/unit parameters that go into the sidecar."""
        return {
            "rated_kw": self.rated_kw,
            "settle_s": self.settle_s,
            "tc_pattern": list(self.tc_pattern),
            "swirl_coupling": self.swirl_coupling,
        }

    def reset(self) -> None:
        self._running_since = None

    def running_for(self, ts: float) -> float | None:
        """Seconds the unit has been RUNNING at ``ts`` as of the last sample, None if not."""
        return None if self._running_since is None else ts - self._running_since

    def in_scope(self, ts: float, tags: Mapping[str, float]) -> bool:
        if tags.get("state") != RUNNING_STATE:
            self._running_since = None
            return False
        if self._running_since is None:
            self._running_since = ts
        return ts - self._running_since >= self.settle_s

    def extract(self, ts: float, tags: Mapping[str, float]) -> FloatArray:
        """The feature vector of one sample; all NaN out of scope or when a tag is missing."""
        nan = np.full(len(self.features), np.nan)
        if not self.in_scope(ts, tags):
            return nan
        try:
            gt = self.profile == GAS_TURBINE
            row = self._gas_turbine(tags) if gt else self._biogas_chp(tags)
        except KeyError:
            return nan
        return np.array(row, dtype=np.float64)

    def tc_deviations(self, tags: Mapping[str, float]) -> FloatArray:
        """Each thermocouple minus the six channels' mean (what the burner pattern is fit on)."""
        tc = np.array([tags[t] for t in _TC_TAGS], dtype=np.float64)
        out: FloatArray = tc - tc.mean()
        return out

    def _gas_turbine(self, tags: Mapping[str, float]) -> list[float]:
        tc = np.array([tags[t] for t in _TC_TAGS], dtype=np.float64)
        r = tc - tc.mean() - np.asarray(self.tc_pattern)
        k = int(np.argmax(np.abs(r)))
        sign = 1.0 if r[k] >= 0.0 else -1.0
        neighbours = (r[(k - 1) % 6] + r[(k + 1) % 6]) / 2.0
        far = (r[(k + 2) % 6] + r[(k + 3) % 6] + r[(k + 4) % 6]) / 3.0
        return [
            tags["power"] / self.rated_kw,
            tags["inlet_temp"],
            tags["fuel_flow"],
            tags["cdp"],
            float(tc.mean()),
            sign * (r[k] - neighbours / self.swirl_coupling),
            sign * (neighbours - far),
            tags["bearing_vibration"],
            tags["lube_oil_temp"],
            tags["lube_oil_pressure"],
        ]

    def _biogas_chp(self, tags: Mapping[str, float]) -> list[float]:
        return [
            tags["engine_power"] / self.rated_kw,
            tags["ambient_temp"],
            tags["coolant_return_temp"],
            tags["heat_power"],
            tags["coolant_supply_temp"] - tags["coolant_return_temp"],
            tags["methane_content"],
            tags["gas_flow"],
            tags["exhaust_temp"],
            tags["bearing_vibration"],
            tags["lube_oil_temp"],
            tags["lube_oil_pressure"],
        ]


def feature_set(profile: str, params: Mapping[str, Any] | None = None) -> FeatureSet:
    """A fresh feature set for ``profile`` with the sidecar's ``params`` (defaults when None)."""
    p = dict(params or {})
    if profile == GAS_TURBINE:
        fs = FeatureSet(profile, GT_FEATURES, rated_kw=5500.0, settle_s=2400.0)
    elif profile == BIOGAS_CHP:
        fs = FeatureSet(profile, CHP_FEATURES, rated_kw=500.0, settle_s=3600.0)
    else:
        raise ModelError(f"no feature set for plant profile {profile!r}")
    try:
        if "rated_kw" in p:
            fs.rated_kw = float(p["rated_kw"])
        if "settle_s" in p:
            fs.settle_s = float(p["settle_s"])
        if "tc_pattern" in p:
            pattern = tuple(float(v) for v in p["tc_pattern"])
            if len(pattern) != 6:
                raise ValueError(f"tc_pattern needs 6 values, has {len(pattern)}")
            fs.tc_pattern = pattern
        if "swirl_coupling" in p:
            fs.swirl_coupling = float(p["swirl_coupling"])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"bad feature parameters for {profile}: {exc}") from exc
    return fs
