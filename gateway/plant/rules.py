"""Hard limits on plant tags with hysteresis and an on-delay: the rules beside the model.

A limit is a fixed line from the OEM's manual (lube oil pressure low, vibration high-high), so it
needs no learning; what it needs is to not chatter. A limit raises only after the value has been
beyond it for ``delay_s`` (one noisy sample is not a trip condition), and clears only once the
value is back inside by ``hysteresis``. A missing or NaN tag neither raises nor clears.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.core.alarms import AlarmEvent
from gateway.core.errors import ConfigError, ConfigIssue

log = logging.getLogger(__name__)

SEVERITIES = ("warning", "alarm", "trip")


@dataclass(frozen=True)
class Limit:
    """One hard limit on one tag: ``kind`` "high" raises above ``value``, "low" below it."""

    tag: str
    kind: str
    value: float
    hysteresis: float
    severity: str = "alarm"
    delay_s: float = 0.0

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
            v = tags.get(lim.tag)
            if v is None or not math.isfinite(v):
                continue
            st = self._state[lim.name]
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

    def _event(self, lim: Limit, state: str, ts: float, v: float) -> AlarmEvent:
        log.info(
            "%s: %s %s %s (%.6g vs %.6g)", self.device, lim.name, state, lim.kind, v, lim.value
        )
        return AlarmEvent(
            f"limit_{lim.kind}", state, self.device, ts, lim.tag, v, lim.value, cause=lim.severity
        )
