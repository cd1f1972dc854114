"""Hard limits on plant tags with hysteresis and an on-delay: the rules beside the model.

A limit is a fixed line from the OEM's manual (lube oil pressure low, vibration high-high), so it
needs no learning; what it needs is to not chatter. A limit raises only after the value has been
beyond it for ``delay_s`` (one noisy sample is not a trip condition), and clears only once the
value is back inside by ``hysteresis``. A missing or NaN tag neither raises nor clears. A limit
may be enabled only while another tag is high enough (lube oil pressure only at speed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.core.alarms import AlarmEvent, Severity
from gateway.core.errors import ConfigError, ConfigIssue

SEVERITIES = tuple(s.value for s in Severity)


@dataclass(frozen=True)
class Limit:
    """One hard limit on one tag: ``kind`` "high" raises above ``value``, "low" below it."""

    tag: str
    kind: str
    value: float
    hysteresis: float
    severity: str = "alarm"
    delay_s: float = 0.0
    # (tag, value): evaluate only while that tag is >= value, e.g. oil pressure only at speed;
    # when the condition lapses a raised limit clears, so a stopped machine holds no alarms
    enable: tuple[str, float] | None = None

    @property
    def name(self) -> str:
        return f"{self.tag}.{self.kind}.{self.severity}"

    def issues(self, where: str) -> list[ConfigIssue]:
        found = []
        if self.kind not in ("high", "low"):
            found.append(ConfigIssue(where, "kind", f"must be high or low, not {self.kind!r}"))
        if self.severity not in SEVERITIES:
            found.append(ConfigIssue(where, "severity", f"must be one of {', '.join(SEVERITIES)}"))
        if not math.isfinite(self.value):
            found.append(ConfigIssue(where, "value", "must be a finite number"))
        if not (self.hysteresis >= 0.0 and math.isfinite(self.hysteresis)):
            found.append(ConfigIssue(where, "hysteresis", "must be >= 0"))
        if not (self.delay_s >= 0.0 and math.isfinite(self.delay_s)):
            found.append(ConfigIssue(where, "delay_s", "must be >= 0"))
        return found

    def beyond(self, v: float) -> bool:
        return v > self.value if self.kind == "high" else v < self.value

    def back_inside(self, v: float) -> bool:
        if self.kind == "high":
            return v <= self.value - self.hysteresis
        return v >= self.value + self.hysteresis


@dataclass
class _LimitState:
    active: bool = False
    beyond_since: float | None = None


class LimitRules:
    """Evaluates a set of :class:`Limit` on each sample of tag values for one device."""

    def __init__(self, device: str, limits: Iterable[Limit], source: str = "<rules>") -> None:
        self.device = device
        self._limits = tuple(limits)
        issues = [i for n, lim in enumerate(self._limits) for i in lim.issues(f"{source}[{n}]")]
        names = [lim.name for lim in self._limits]
        issues += [
            ConfigIssue(source, name, "defined twice")
            for name in sorted(set(names))
            if names.count(name) > 1
        ]
        if issues:
            raise ConfigError(issues)
        self._state = {lim.name: _LimitState() for lim in self._limits}

    @property
    def limits(self) -> tuple[Limit, ...]:
        return self._limits

    def active(self) -> list[str]:
        """Names of the limits currently raised."""
        return [name for name, st in self._state.items() if st.active]

    def check(self, ts: float, tags: Mapping[str, float]) -> list[AlarmEvent]:
        """Advance every limit by one sample at ``ts``; return the raise/clear transitions."""
        events = []
        for lim in self._limits:
            st = self._state[lim.name]
            if lim.enable is not None:
                gate = tags.get(lim.enable[0])
                if gate is None or not math.isfinite(gate):
                    continue
                if gate < lim.enable[1]:
                    st.beyond_since = None
                    if st.active:
                        st.active = False
                        events.append(self._event(lim, "cleared", ts, None))
                    continue
            v = tags.get(lim.tag)
            if v is None or not math.isfinite(v):
                continue
            if not st.active:
                if not lim.beyond(v):
                    st.beyond_since = None
                    continue
                if st.beyond_since is None:
                    st.beyond_since = ts
                if ts - st.beyond_since >= lim.delay_s:
                    st.active = True
                    st.beyond_since = None
                    events.append(self._event(lim, "raised", ts, v))
            elif lim.back_inside(v):
                st.active = False
                events.append(self._event(lim, "cleared", ts, v))
        return events

    def _event(self, lim: Limit, state: str, ts: float, v: float | None) -> AlarmEvent:
        if v is None and lim.enable is not None:
            cause = f"{lim.severity}: {lim.enable[0]} below {lim.enable[1]:g}"
        else:
            cause = lim.severity
        return AlarmEvent(
            f"limit_{lim.kind}",
            state,
            self.device,
            ts,
            lim.tag,
            v,
            lim.value,
            cause=cause,
            severity=Severity(lim.severity),
        )


# Defaults for the two simulated profiles: alarms well before the PLC's own protective trips
# (gas turbine: lube oil 1.0 bar, vibration 25 mm/s; CHP: lube oil 1.5 bar, vibration 20 mm/s,
# methane 40 %), so the operator hears of it first. Vibration alarm at 7.1 mm/s is the ISO
# 10816-3 zone C boundary for large machines on rigid foundations. Real plants set their own.
GAS_TURBINE_LIMITS: tuple[Limit, ...] = (
    Limit("lube_oil_pressure", "low", 1.8, 0.1, "alarm", 5.0, ("shaft_speed", 14_000.0)),
    Limit("lube_oil_pressure", "low", 1.3, 0.1, "trip", 2.0, ("shaft_speed", 14_000.0)),
    Limit("lube_oil_temp", "high", 70.0, 2.0, "alarm", delay_s=10.0),
    Limit("bearing_vibration", "high", 7.1, 0.5, "alarm", delay_s=10.0),
    Limit("bearing_vibration", "high", 11.2, 0.5, "trip", delay_s=2.0),
    Limit("inlet_temp", "high", 45.0, 1.0, "warning", delay_s=60.0),
)
BIOGAS_CHP_LIMITS: tuple[Limit, ...] = (
    Limit("lube_oil_pressure", "low", 3.0, 0.1, "alarm", 5.0, ("engine_speed", 1_400.0)),
    Limit("lube_oil_pressure", "low", 2.0, 0.1, "trip", 2.0, ("engine_speed", 1_400.0)),
    Limit("lube_oil_temp", "high", 95.0, 2.0, "alarm", delay_s=10.0),
    Limit("bearing_vibration", "high", 7.1, 0.5, "alarm", delay_s=10.0),
    Limit("methane_content", "low", 48.0, 1.0, "alarm", 60.0, ("engine_speed", 1_400.0)),
    Limit("coolant_supply_temp", "high", 95.0, 2.0, "alarm", delay_s=10.0),
)
