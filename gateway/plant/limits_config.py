"""``[plant.rules]``: the profile's hard limits (:mod:`gateway.plant.rules`), plus or instead of
the limits the config adds.

``defaults = true`` keeps the profile's limits; each ``[[plant.rules.limits]]`` (``tag``, ``kind``
high|low, ``value``, ``hysteresis``, ``severity`` warning|alarm|trip, ``delay_s``, ``enable_tag`` +
``enable_above``) adds one or replaces a default of the same tag, kind and severity. A limit judges
its own values (:meth:`Limit.issues`); this module reports them under the config's keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.config.issues import IssueSink, check_keys, join, take
from gateway.config.rules import REQUIRED, ranged
from gateway.plant.rules import BIOGAS_CHP_LIMITS, GAS_TURBINE_LIMITS, Limit

_LIMIT_KEYS: Final = {
    "tag",
    "kind",
    "value",
    "hysteresis",
    "severity",
    "delay_s",
    "enable_tag",
    "enable_above",
}


# A limit is in its tag's unit (bar, degC, mm/s, rpm, kW, %): no plant tag goes past a million
# of any of them, and 1e308 was a limit that never trips. A delay past an hour is no protection.
VALUE_RANGE: Final = (-1e6, 1e6)
DELAY_RANGE: Final = (0.0, 3600.0)
_TAG_UNIT: Final = "in the tag's unit"


def parse_limits(sink: IssueSink, table: Mapping[str, Any], profile: str) -> tuple[Limit, ...]:
    path = "plant.rules"
    check_keys(sink, path, table, {"defaults", "limits"})
    use_defaults = take(sink, path, table, "defaults", bool, True)
    out: dict[str, Limit] = {}
    if use_defaults:
        defaults = GAS_TURBINE_LIMITS if profile == "gas_turbine" else BIOGAS_CHP_LIMITS
        out = {lim.name: lim for lim in defaults}
    raw = take(sink, path, table, "limits", list, [])
    added: set[str] = set()
    for i, item in enumerate(raw or []):
        where = join(join(path, "limits"), i)
        if not isinstance(item, dict):
            sink.error(where, "expected a table")
            continue
        lim = _limit(sink, where, item)
        if lim is None:
            continue
        if lim.name in added:
            sink.error(where, f"{lim.tag} {lim.kind} {lim.severity} is defined twice")
        added.add(lim.name)
        out[lim.name] = lim
    return tuple(out.values())


def _limit(sink: IssueSink, where: str, item: Mapping[str, Any]) -> Limit | None:
    check_keys(sink, where, item, _LIMIT_KEYS)
    tag = take(sink, where, item, "tag", str)
    kind = take(sink, where, item, "kind", str)
    value = ranged(sink, where, item, "value", REQUIRED, *VALUE_RANGE, unit=_TAG_UNIT)
    hyst = ranged(sink, where, item, "hysteresis", 0.0, 0.0, VALUE_RANGE[1], unit=_TAG_UNIT)
    severity = take(sink, where, item, "severity", str, "alarm")
    delay = ranged(sink, where, item, "delay_s", 0.0, *DELAY_RANGE, unit="s")
    enable_tag = take(sink, where, item, "enable_tag", str, None)
    enable_above = ranged(
        sink, where, item, "enable_above", None, *VALUE_RANGE, unit="in the enable tag's unit"
    )
    if ("enable_tag" in item) != ("enable_above" in item):
        sink.error(where, "enable_tag and enable_above go together")
    if tag is None or kind is None or value is None or severity is None:
        return None
    enable = (enable_tag, enable_above) if enable_tag and enable_above is not None else None
    lim = Limit(tag, kind, value, hyst, severity, delay, enable)
    for issue in lim.issues(where):
        sink.error(join(where, issue.path), issue.reason)
    return lim


def check_limit_tags(sink: IssueSink, limits: tuple[Limit, ...], names: set[str]) -> None:
    """Every tag a limit reads (its own, its enable tag) must come from an OPC UA node."""
    for lim in limits:
        for tag in (lim.tag, *(() if lim.enable is None else (lim.enable[0],))):
            if tag not in names:
                sink.error(
                    "plant.rules",
                    f"limit {lim.name} reads tag {tag!r}, which no OPC UA node provides",
                )
