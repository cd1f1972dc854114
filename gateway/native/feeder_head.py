"""Source and transformer of a feeder, folded into a Thevenin equivalent at the LV busbar.

Everything upstream of the busbar is linear, so the equivalent is exact in every sequence and
the sweep only walks the LV tree. Transformer parameters follow power-grid-model (vector groups
Dyn and YNyn, fixed tap), so results agree with it.
"""

from __future__ import annotations

import cmath
import math

from gateway.config.issues import IssueSink
from gateway.native.feeder_model import (
    BASE_POWER_1P,
    BASE_POWER_3P,
    DEFAULT_RX,
    DEFAULT_SK,
    DEFAULT_Z01,
    SQRT3,
    WINDING_DELTA,
    WINDING_WYE_N,
    Head,
    SeqBranch,
    seq_to_abc,
)
from gateway.native.pgm_json import Components
from gateway.native.pgm_rows import RowReader


def _z(r: float, x: float) -> complex:
    return complex(r, x)


def _pi(y_series: complex, y_shunt: complex, tap: complex) -> SeqBranch:
    # power-grid-model's calc_param_y_sym with both sides connected.
    ytt = y_series + 0.5 * y_shunt
    t = abs(tap)
    return SeqBranch(ytt / t / t, -y_series / tap.conjugate(), -y_series / tap, ytt)


def _transformer_seq(
    rd: RowReader, u1_rated: float, u2_rated: float
) -> tuple[SeqBranch, SeqBranch, SeqBranch, float]:
    u1 = rd.positive("u1")
    u2 = rd.positive("u2")
    sn = rd.positive("sn")
    uk = rd.positive("uk")
    pk = rd.num("pk", 0.0)
    i0 = rd.num("i0", 0.0)
    p0 = rd.num("p0", 0.0)
    if pk < 0 or i0 < 0 or p0 < 0:
        rd.error("pk", "pk, i0 and p0 must not be negative")
    clock = rd.integer("clock", 0)
    w_from = rd.integer("winding_from")
    w_to = rd.integer("winding_to")
    groups = {(WINDING_DELTA, WINDING_WYE_N): "Dyn", (WINDING_WYE_N, WINDING_WYE_N): "YNyn"}
    if (w_from, w_to) not in groups:
        rd.error(
            "winding_from",
            f"vector group winding_from={w_from}, winding_to={w_to} is not supported "
            "(Dyn: 2/1, YNyn: 1/1; the LV side needs a grounded neutral)",
        )
    elif groups[(w_from, w_to)] == "Dyn" and clock % 2 != 1:
        rd.error("clock", f"a Dyn transformer has an odd clock number, got {clock}")
    elif groups[(w_from, w_to)] == "YNyn" and clock % 2 != 0:
        rd.error("clock", f"a YNyn transformer has an even clock number, got {clock}")
    tap_pos = rd.integer("tap_pos", rd.integer("tap_nom", 0))
    tap_nom = rd.integer("tap_nom", 0)
    tap_size = rd.num("tap_size", 0.0)
    tap_min = rd.integer("tap_min", 0)
    tap_max = rd.integer("tap_max", 0)
    for attr in ("uk_min", "uk_max", "pk_min", "pk_max"):
        if attr in rd.row and tap_pos != tap_nom:
            rd.error(attr, "tap-dependent uk/pk is not supported")
    if not all(map(math.isfinite, (u1, u2, sn, uk, pk, i0, p0, tap_size))):
        nan = SeqBranch(0j, 0j, 0j, 0j)
        return nan, nan, nan, sn
    tap_pos = min(max(tap_pos, min(tap_min, tap_max)), max(tap_min, tap_max))
    direction = 1 if tap_max > tap_min else -1
    shift = direction * (tap_pos - tap_nom) * tap_size
    if rd.integer("tap_side", 0) == 0:
        u1 += shift
    else:
        u2 += shift
    k = (u1 / u2) / (u1_rated / u2_rated)
    base_y_to = (BASE_POWER_3P / u2_rated / SQRT3) ** 2 / BASE_POWER_1P
    z_abs = uk * u2 * u2 / sn
    r = pk * u2 * u2 / sn / sn
    z_series = complex(r, math.sqrt(max(z_abs * z_abs - r * r, 0.0)))
    y_series = (1.0 / z_series) / base_y_to
    y_abs = i0 * sn / u2 / u2
    g = p0 / u2 / u2
    y_shunt = complex(g, -math.sqrt(max(y_abs * y_abs - g * g, 0.0))) / base_y_to
    zg_to = _z(rd.num("r_grounding_to", 0.0), rd.num("x_grounding_to", 0.0)) / (
        u2_rated**2 / BASE_POWER_3P
    )
    zg_from = _z(rd.num("r_grounding_from", 0.0), rd.num("x_grounding_from", 0.0)) / (
        u1_rated**2 / BASE_POWER_3P
    )
    shift_rad = (clock % 12) * math.pi / 6
    pos = _pi(y_series, y_shunt, k * cmath.exp(1j * shift_rad))
    neg = _pi(y_series, y_shunt, k * cmath.exp(-1j * shift_rad))
    if w_from == WINDING_WYE_N:
        z0 = 1.0 / y_series + 3.0 * (zg_to + zg_from / k / k)
        shift0 = math.pi if clock % 12 in (2, 6, 10) else 0.0
        zero = _pi(1.0 / z0, y_shunt, k * cmath.exp(1j * shift0))
    else:  # Dyn: the delta closes the zero sequence inside; only the LV side sees it
        # The neutral's grounding impedance is in series with the whole zero-sequence path,
        # magnetising branch included (this is what power-grid-model computes).
        zero = SeqBranch(0j, 0j, 0j, 1.0 / (1.0 / (y_series + y_shunt) + 3.0 * zg_to))
    return zero, pos, neg, sn


def _thevenin(
    e: tuple[complex, complex, complex],
    ys: tuple[complex, complex, complex],
    trafo: tuple[SeqBranch, SeqBranch, SeqBranch] | None,
) -> tuple[list[complex], list[complex]]:
    """Open-circuit voltage and impedance at the busbar, per sequence."""
    e_th: list[complex] = []
    z_th: list[complex] = []
    for s in range(3):
        if trafo is None:
            e_th.append(e[s])
            z_th.append(1.0 / ys[s])
            continue
        b = trafo[s]
        y_hv = ys[s] + b.yff
        y_th = b.ytt - b.ytf * b.yft / y_hv
        z_th.append(1.0 / y_th)
        e_th.append(-b.ytf * ys[s] * e[s] / (y_hv * y_th))
    return e_th, z_th


def build_head(
    sink: IssueSink, comps: Components, u_rated: dict[int, float]
) -> tuple[Head | None, int | None]:
    before = len(sink.issues)
    sources = [r for r in comps.get("source", []) if r.get("status", 1) != 0]
    if len(sources) != 1:
        sink.error("source", f"exactly one energised source is needed, found {len(sources)}")
        return None, None
    rd = RowReader(sink, "source", 0, sources[0])
    node = rd.integer("node")
    if node not in u_rated:
        rd.error("node", f"unknown node {node}")
        return None, None
    u_ref = rd.positive("u_ref")
    angle = rd.num("u_ref_angle", 0.0)
    sk = rd.positive("sk", DEFAULT_SK)
    rx = rd.num("rx_ratio", DEFAULT_RX)
    z01 = rd.positive("z01_ratio", DEFAULT_Z01)
    if not rx >= 0:
        rd.error("rx_ratio", f"must not be negative, got {rx}")
    x1 = (BASE_POWER_3P / sk) / math.sqrt(rx * rx + 1.0)
    y1 = 1.0 / complex(x1 * rx, x1)
    ys = (y1 / z01, y1, y1)
    es = (0j, u_ref * cmath.exp(1j * angle), 0j)
    trafos = [r for r in comps.get("transformer", [])]
    trafo = None
    t_id: int | None = None
    sn = math.nan
    busbar = node
    if len(trafos) > 1:
        sink.error("transformer", f"at most one transformer is supported, found {len(trafos)}")
    elif trafos:
        trd = RowReader(sink, "transformer", 0, trafos[0])
        t_id = trd.integer("id")
        f, t = trd.integer("from_node"), trd.integer("to_node")
        if trd.integer("from_status", 1) == 0 or trd.integer("to_status", 1) == 0:
            trd.error("from_status", "the transformer must be closed on both sides")
        if f != node:
            trd.error("from_node", f"must be the source's node {node} (HV side), got {f}")
        if t not in u_rated:
            trd.error("to_node", f"unknown node {t}")
            return None, None
        busbar = t
        *seq, sn = _transformer_seq(trd, u_rated[node], u_rated[t])
        trafo = (seq[0], seq[1], seq[2])
    if len(sink.issues) > before:
        return None, None
    e_th, z_th = _thevenin(es, ys, trafo)
    head = Head(
        source_id=rd.integer("id"),
        source_node_id=node,
        source_u_rated=u_rated[node],
        e_seq=es,
        y_source=ys,
        transformer_id=t_id,
        transformer_sn=sn,
        trafo=trafo,
        e_th=seq_to_abc((e_th[0], e_th[1], e_th[2])),
        z_th1=z_th[1],
        z_thm=(z_th[0] - z_th[1]) / 3.0,
    )
    return head, busbar


__all__ = ["build_head"]
