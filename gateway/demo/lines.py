"""One readable line per upstream message: who sent it, about what, the values that matter.

The demo's reader is a newcomer: units are spelled out, the columns are explained once in the
legend, and alarms are marked so they stand out of a scrolling terminal. Upstream consumers parse
the JSON; only this printout is for people.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.sim.upstream import Received

ALARM_MARK = ">>> ALARM"
LEGEND = """\
Each line is one message as upstream (SCADA, a cloud service) receives it from the broker:
  time  daemon  device     what it says
  grid  head, cab1..3   the feeder's meters: mean voltage per phase L1/L2/L3 (V), mean power
                        per phase (kW, negative = feeding back, e.g. PV), how many points were
                        good; "-" = did not move past its deadband since it was last sent
  grid  feeder          the load-flow estimate of every node nobody measures: the lowest and
                        highest voltage (per unit of 240 V, the feeder's 416 V line-to-line,
                        and in V) and where, the most loaded line, from how many meters
  bms   rack            state of charge of the cells (lowest / mean / highest, %), the spread of
                        the cell voltages (mV), cells bleeding to balance, faulted cells
  plant gt1             the gas turbine's state and power, its anomaly score against the early
                        warning threshold, operating hours and starts for maintenance
  >>> ALARM             a limit crossed, a fault found or an early warning, raised or cleared
"""


def _f(x: Any, fmt: str) -> str:
    return "-" if not isinstance(x, int | float) else format(x, fmt)


def _mean(points: dict[str, Any], name: str) -> float | None:
    p = points.get(name)
    return p.get("mean") if isinstance(p, dict) else None


def _per_phase(points: dict[str, Any], stem: str, scale: float, fmt: str) -> str | None:
    values = [_mean(points, f"{stem}_l{p}") for p in (1, 2, 3)]
    if all(v is None for v in values):
        return None
    return "/".join("-" if v is None else format(v * scale, fmt) for v in values)


def _grid_summary(b: dict[str, Any]) -> str:
    pts = b.get("points", {})
    parts = []
    if (u := _per_phase(pts, "voltage", 1.0, ".1f")) is not None:
        parts.append(f"voltage {u} V")
    if (p := _per_phase(pts, "power", 1e-3, ".2f")) is not None:
        parts.append(f"power {p} kW")
    # Report by exception: a window in which nothing moved past its deadband sends no values.
    what = ", ".join(parts) if parts else "nothing moved past its deadband"
    return f"{what} ({b.get('good')} points good, {b.get('bad')} bad)"


# The demo's feeder, the IEEE European LV test feeder, is a 416 V (line-to-line) network.
FEEDER_BASE_V = 416.0 / 3**0.5


def _node(pair: Any, base_v: float = FEEDER_BASE_V) -> str:
    if not isinstance(pair, list) or len(pair) != 2:
        return "-"
    pu, node = pair
    return f"{pu:.3f} pu ({pu * base_v:.1f} V) at node {node}"


def _estimate(b: dict[str, Any]) -> str:
    if not b.get("converged", False):
        return f"estimate not valid: {b.get('reason', 'no reason given')}"
    # Per phase: u_min_a = [pu, node id], ...; the extremes over the phases are what matter.
    lows = [(v, k.removeprefix("u_min_")) for k, v in b.items() if k.startswith("u_min_")]
    highs = [(v, k.removeprefix("u_max_")) for k, v in b.items() if k.startswith("u_max_")]
    if not lows or not highs:
        return "estimate without node voltages"
    low, low_ph = min(lows, key=lambda x: x[0][0])
    high, high_ph = max(highs, key=lambda x: x[0][0])
    loading = b.get("loading_max_pct")
    busiest = f", busiest line {loading[1]} at {loading[0]:.0f} %" if loading else ""
    return (
        f"estimate: lowest {_node(low)} phase {low_ph}, highest {_node(high)} phase {high_ph}"
        f"{busiest}; from {len(b.get('meters', []))} meters"
    )


def _bms_summary(b: dict[str, Any]) -> str:
    soc, volts = b.get("soc", {}), b.get("voltage", {})
    spread = volts.get("spread")
    current = b.get("current_a", {}).get("mean")
    silent = b.get("boards_silent") or []
    return (
        f"SOC {_f(_pct(soc.get('min')), '.1f')}/{_f(_pct(soc.get('mean')), '.1f')}/"
        f"{_f(_pct(soc.get('max')), '.1f')} %, cell spread "
        f"{_f(spread * 1000 if spread is not None else None, '.0f')} mV, "
        f"current {_f(current, '.1f')} A, {b.get('bleeding', 0)} cells bleeding, "
        f"{b.get('faulted', 0)} faulted"
        + (f", boards silent: {', '.join(silent)}" if silent else "")
    )


def _pct(x: Any) -> float | None:
    return x * 100.0 if isinstance(x, int | float) else None


def _plant_summary(b: dict[str, Any]) -> str:
    score = b.get("score") or {}
    c = b.get("counters") or {}
    warn = f", EARLY WARNING: look at {b.get('subsystem')}" if b.get("warning") else ""
    power = _f((b.get("power_kw") or {}).get("mean"), ",.0f")
    threshold = _f(b.get("threshold"), ".2f")
    return (
        f"{b.get('state')}, {power} kW, anomaly score {_f(score.get('max'), '.2f')} "
        f"(warning above {threshold}){warn}; {_f(c.get('operating_hours'), ',.1f')} operating "
        f"hours, {c.get('starts')} starts"
    )


def _alarm(b: dict[str, Any]) -> str:
    what = b.get("alarm", "?")
    if what == "anomaly":
        detail = f"early warning, look at {b.get('subsystem')}" if b.get("subsystem") else ""
    elif "point" in b:
        limit = f" (limit {_f(b['limit'], '.4g')})" if b.get("limit") is not None else ""
        detail = f"{b['point']} = {_f(b.get('value'), '.4g')}{limit}"
    else:
        detail = str(b.get("cause", ""))
    sev = f" [{b['severity']}]" if "severity" in b else ""
    return f"{ALARM_MARK} {what} {b.get('state')}{sev}: {detail}".rstrip(": ")


def _body_line(daemon: str, kind: str, b: dict[str, Any]) -> str:
    if kind == "alarm":
        return _alarm(b)
    if kind == "estimate":
        return _estimate(b)
    if kind == "summary" and daemon == "grid":
        return _grid_summary(b)
    if kind == "summary" and daemon == "bms":
        return _bms_summary(b)
    if kind == "summary" and daemon == "plant":
        return _plant_summary(b)
    return f"{kind}: {json.dumps(b, separators=(',', ':'))[:110]}"


def line(msg: Received) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(msg.arrived))
    doc = msg.doc()
    if doc is None:  # the retained online/offline status, or anything not gridgate's JSON
        text = msg.payload[:60].decode(errors="replace")
        return f"{clock}  uplink  gateway    {text}"
    daemon = str(doc.get("daemon", "?"))
    raw = doc.get("body")
    body: dict[str, Any] = raw if isinstance(raw, dict) else {}
    device = str(body.get("device", ""))
    try:
        text = _body_line(daemon, str(doc.get("kind")), body)
    except (KeyError, IndexError, TypeError, ValueError):
        # A message this printout does not know how to read: show it raw, never stop printing.
        text = f"{doc.get('kind')}: {json.dumps(body, separators=(',', ':'))[:110]}"
    return f"{clock}  {daemon:<6}  {device:<9}  {text}"
