"""A radial LV feeder read from power-grid-model's JSON input format, validated and in per-unit.

What is supported, and why it is enough for a low-voltage feeder: ``node``; ``line`` (sequence
data r1/x1/c1/tan1, r0/x0/c0/tan0, ``i_n``); exactly one ``source`` (u_ref, u_ref_angle, sk,
rx_ratio, z01_ratio); at most one ``transformer`` from the source's node to the LV busbar
(vector groups Dyn and YNyn, fixed tap); ``sym_load``/``asym_load`` and ``sym_gen``/``asym_gen``
of type const_power, const_impedance or const_current. Sensors are ignored. Every problem is
collected with the component id (``line[id=17].r1``) and raised as one ConfigError.

Units follow power-grid-model: base power 1 MVA (three-phase), per-phase voltage base
``u_rated/sqrt(3)``. Everything upstream of the LV busbar (source and transformer) is linear, so
it is folded into a Thevenin equivalent at the busbar, exact in every sequence: the sweep then
only walks the LV tree. Every series element here is sequence-symmetric, so its 3x3 phase
matrix is ``z1*I + zm*ones`` with ``zm = (z0 - z1)/3``; only (z1, zm) are stored.
"""

from __future__ import annotations

import cmath
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.config.issues import IssueSink
from gateway.native import pgm_json
from gateway.native.pgm_json import Components, Row

BASE_POWER_3P: Final = 1e6
BASE_POWER_1P: Final = BASE_POWER_3P / 3.0
SYSTEM_FREQUENCY: Final = 50.0
SQRT3: Final = math.sqrt(3.0)
A_OP: Final = cmath.exp(2j * math.pi / 3)  # the 120-degree operator: phase b = a^2 * phase a
# power-grid-model's source defaults when sk/rx_ratio/z01_ratio are not given.
DEFAULT_SK: Final = 1e10
DEFAULT_RX: Final = 0.1
DEFAULT_Z01: Final = 1.0

WINDING_WYE_N: Final = 1
WINDING_DELTA: Final = 2
LOAD_TYPES: Final = {0: "const_power", 1: "const_impedance", 2: "const_current"}
LOAD_COMPONENTS: Final = {"sym_load": 1.0, "asym_load": 1.0, "sym_gen": -1.0, "asym_gen": -1.0}
IGNORED_SUFFIX: Final = "_sensor"
SUPPORTED: Final = ("node", "line", "source", "transformer", *LOAD_COMPONENTS)

ComplexArray = npt.NDArray[np.complex128]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SeqBranch:
    """A branch's admittances (yff, yft, ytf, ytt) in one sequence (power-grid-model's pi)."""

    yff: complex
    yft: complex
    ytf: complex
    ytt: complex


@dataclass(frozen=True)
class Head:
    """Source (and transformer) seen from the LV busbar, plus what is needed to report them."""

    source_id: int
    source_node_id: int
    source_u_rated: float
    e_seq: tuple[complex, complex, complex]  # source EMF per sequence (0, 1, 2), p.u.
    y_source: tuple[complex, complex, complex]  # source admittance per sequence, p.u.
    transformer_id: int | None
    transformer_sn: float
    trafo: tuple[SeqBranch, SeqBranch, SeqBranch] | None  # per sequence 0, 1, 2
    e_th: ComplexArray  # open-circuit busbar voltage per phase a, b, c (p.u.)
    z_th1: complex  # Thevenin impedance: z1*I + zm*ones (p.u.)
    z_thm: complex


@dataclass(frozen=True)
class FeederModel:
    """A validated radial feeder in per-unit. LV nodes are in breadth-first order from the busbar
    (index 0); line ``k`` feeds node ``k + 1`` from ``parent[k + 1]``."""

    name: str
    node_ids: IntArray
    parent: IntArray  # [n_nodes], -1 for the busbar
    u_rated: float  # of every LV node, V line-to-line
    line_ids: IntArray  # [n_nodes - 1]
    line_reversed: npt.NDArray[np.bool_]  # from_node is the downstream node
    line_z1: ComplexArray
    line_zm: ComplexArray
    line_y1_half: ComplexArray  # half the line's shunt admittance, at each end
    line_ym_half: ComplexArray
    line_i_n: FloatArray  # A, NaN when not given
    head: Head
    load_ids: IntArray
    load_component: tuple[str, ...]
    load_node: IntArray  # LV node index
    load_type: IntArray  # 0 const power, 1 const impedance, 2 const current
    load_status: npt.NDArray[np.bool_]
    load_p: FloatArray  # [n_loads, 3] W per phase, consumption positive (generators negated)
    load_q: FloatArray

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_loads(self) -> int:
        return len(self.load_ids)

    @property
    def base_v(self) -> float:
        """Per-phase voltage base, V."""
        return self.u_rated / SQRT3

    @property
    def base_i(self) -> float:
        return BASE_POWER_3P / self.u_rated / SQRT3


def seq_to_abc(v012: tuple[complex, complex, complex]) -> ComplexArray:
    v0, v1, v2 = v012
    a = A_OP
    return np.array([v0 + v1 + v2, v0 + a * a * v1 + a * v2, v0 + a * v1 + a * a * v2])


def abc_to_seq(vabc: npt.ArrayLike) -> tuple[complex, complex, complex]:
    va, vb, vc = (complex(x) for x in np.asarray(vabc))
    a = A_OP
    return (
        (va + vb + vc) / 3,
        (va + a * vb + a * a * vc) / 3,
        (va + a * a * vb + a * vc) / 3,
    )


class _Reader:
    """Typed access to one row's attributes, reporting every problem with the component id."""

    def __init__(self, sink: IssueSink, component: str, index: int, row: Row) -> None:
        self.sink = sink
        self.row = row
        rid = row.get("id")
        self.where = f"{component}[id={rid}]" if rid is not None else f"{component}[{index}]"

    def error(self, attr: str, reason: str) -> None:
        self.sink.error(f"{self.where}.{attr}" if attr else self.where, reason)

    def num(self, attr: str, default: float | None = None) -> float:
        value = self.row.get(attr)
        if value is None:
            if default is None:
                self.error(attr, "required attribute is missing")
                return math.nan
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(attr, f"expected a number, got {value!r}")
            return math.nan
        return float(value)

    def integer(self, attr: str, default: int | None = None) -> int:
        value = self.row.get(attr)
        if value is None:
            if default is None:
                self.error(attr, "required attribute is missing")
                return 0
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(attr, f"expected an integer, got {value!r}")
            return 0
        return value

    def triple(self, attr: str) -> list[float]:
        value = self.row.get(attr)
        if not (
            isinstance(value, list)
            and len(value) == 3
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            self.error(attr, f"expected an array of three numbers (one per phase), got {value!r}")
            return [math.nan] * 3
        return [float(v) for v in value]

    def positive(self, attr: str, default: float | None = None) -> float:
        value = self.num(attr, default)
        if not value > 0:
            self.error(attr, f"must be positive, got {value}")
        return value


def _ids(sink: IssueSink, comps: Components) -> None:
    seen: dict[int, str] = {}
    for name, rows in comps.items():
        for i, row in enumerate(rows):
            rid = row.get("id")
            if isinstance(rid, bool) or not isinstance(rid, int):
                sink.error(f"{name}[{i}].id", f"expected an integer id, got {rid!r}")
                continue
            if rid in seen:
                sink.error(f"{name}[id={rid}].id", f"duplicate id (also used by a {seen[rid]})")
            seen[rid] = name


def _z(r: float, x: float) -> complex:
    return complex(r, x)


def _pi(y_series: complex, y_shunt: complex, tap: complex) -> SeqBranch:
    # power-grid-model's calc_param_y_sym with both sides connected.
    ytt = y_series + 0.5 * y_shunt
    t = abs(tap)
    return SeqBranch(ytt / t / t, -y_series / tap.conjugate(), -y_series / tap, ytt)


def _transformer_seq(
    rd: _Reader, u1_rated: float, u2_rated: float
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


def _head(
    sink: IssueSink, comps: Components, u_rated: dict[int, float]
) -> tuple[Head | None, int | None]:
    before = len(sink.issues)
    sources = [r for r in comps.get("source", []) if r.get("status", 1) != 0]
    if len(sources) != 1:
        sink.error("source", f"exactly one energised source is needed, found {len(sources)}")
        return None, None
    rd = _Reader(sink, "source", 0, sources[0])
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
        trd = _Reader(sink, "transformer", 0, trafos[0])
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


@dataclass
class _Line:
    lid: int
    a: int
    b: int
    z1: complex
    zm: complex
    y1: complex
    ym: complex
    i_n: float


def _lines(sink: IssueSink, comps: Components, u_rated: dict[int, float]) -> list[_Line]:
    out: list[_Line] = []
    for i, row in enumerate(comps.get("line", [])):
        rd = _Reader(sink, "line", i, row)
        a, b = rd.integer("from_node"), rd.integer("to_node")
        for attr, n in (("from_node", a), ("to_node", b)):
            if n not in u_rated:
                rd.error(attr, f"unknown node {n}")
        if a == b:
            rd.error("to_node", "a line must join two different nodes")
        r1, x1, r0, x0 = rd.num("r1"), rd.num("x1"), rd.num("r0"), rd.num("x0")
        for attr, v in (("r1", r1), ("r0", r0)):
            if v < 0:
                rd.error(attr, f"must not be negative, got {v}")
        if not abs(complex(r1, x1)) > 0:
            rd.error("r1", "positive-sequence impedance r1 + j x1 must be non-zero")
        if not abs(complex(r0, x0)) > 0:
            rd.error("r0", "zero-sequence impedance r0 + j x0 must be non-zero")
        c1, c0 = rd.num("c1", 0.0), rd.num("c0", 0.0)
        tan1, tan0 = rd.num("tan1", 0.0), rd.num("tan0", 0.0)
        i_n = rd.num("i_n", math.nan)
        if "i_n" in row and not i_n > 0:
            rd.error("i_n", f"must be positive, got {i_n}")
        if rd.integer("from_status", 1) == 0 or rd.integer("to_status", 1) == 0:
            continue  # an open line is not part of the feeder's tree
        if a not in u_rated or b not in u_rated or a == b:
            continue
        if u_rated[a] != u_rated[b]:
            rd.error("to_node", f"joins nodes of different u_rated ({u_rated[a]}, {u_rated[b]})")
            continue
        zb = u_rated[a] ** 2 / BASE_POWER_3P
        z1, z0 = complex(r1, x1) / zb, complex(r0, x0) / zb
        w = 2 * math.pi * SYSTEM_FREQUENCY
        y1 = w * c1 * complex(tan1, 1.0) * zb
        y0 = w * c0 * complex(tan0, 1.0) * zb
        out.append(_Line(rd.integer("id"), a, b, z1, (z0 - z1) / 3, y1 / 2, (y0 - y1) / 6, i_n))
    return out


def _tree(
    sink: IssueSink, root: int, lines: list[_Line], lv_nodes: set[int]
) -> tuple[list[int], list[int], list[_Line | None]]:
    """Breadth-first order from the busbar; a second path to a node is a mesh."""
    adj: dict[int, list[_Line]] = {n: [] for n in lv_nodes}
    for ln in lines:
        adj.setdefault(ln.a, []).append(ln)
        adj.setdefault(ln.b, []).append(ln)
    order = [root]
    index = {root: 0}
    parent = [-1]
    via: list[_Line | None] = [None]
    queue = deque([root])
    used: set[int] = set()
    while queue:
        n = queue.popleft()
        for ln in adj.get(n, []):
            if ln.lid in used:
                continue
            used.add(ln.lid)
            other = ln.b if ln.a == n else ln.a
            if other in index:
                sink.error(
                    f"line[id={ln.lid}]",
                    f"closes a mesh (node {other} is reached twice): this solver is for "
                    "radial feeders",
                )
                continue
            index[other] = len(order)
            order.append(other)
            parent.append(index[n])
            via.append(ln)
            queue.append(other)
    missing = sorted(lv_nodes - set(index))
    for n in missing:
        sink.error(
            f"node[id={n}]",
            "is not connected to the source (an island): this solver is for radial feeders "
            "fed from one source",
        )
    return order, parent, via


def _loads(
    sink: IssueSink, comps: Components, index: dict[int, int], hv: set[int]
) -> list[tuple[int, str, int, int, bool, list[float], list[float]]]:
    out = []
    for comp, sign in LOAD_COMPONENTS.items():
        for i, row in enumerate(comps.get(comp, [])):
            rd = _Reader(sink, comp, i, row)
            node = rd.integer("node")
            ltype = rd.integer("type", 0)
            if ltype not in LOAD_TYPES:
                rd.error("type", f"unknown load type {ltype} (0, 1 or 2)")
            if comp.startswith("sym"):
                p = [rd.num("p_specified", 0.0) / 3] * 3
                q = [rd.num("q_specified", 0.0) / 3] * 3
            else:
                p = rd.triple("p_specified") if "p_specified" in row else [0.0] * 3
                q = rd.triple("q_specified") if "q_specified" in row else [0.0] * 3
            if node in hv:
                rd.error("node", f"node {node} is on the source side of the transformer")
            elif node not in index:
                rd.error("node", f"unknown node {node}")
                continue
            status = rd.integer("status", 1) != 0
            p = [sign * v for v in p]
            q = [sign * v for v in q]
            out.append((rd.integer("id"), comp, index.get(node, 0), ltype, status, p, q))
    return out


def build(comps: Components, name: str, sink: IssueSink) -> FeederModel | None:
    """Validate one input scenario and build the model; problems go to ``sink``."""
    for comp in comps:
        if comp not in SUPPORTED and not comp.endswith(IGNORED_SUFFIX):
            sink.error(comp, f"unsupported component (supported: {', '.join(SUPPORTED)})")
    _ids(sink, comps)
    u_rated: dict[int, float] = {}
    for i, row in enumerate(comps.get("node", [])):
        rd = _Reader(sink, "node", i, row)
        nid = rd.integer("id")
        u_rated[nid] = rd.positive("u_rated")
    head, busbar = _head(sink, comps, u_rated)
    lines = _lines(sink, comps, u_rated)
    if head is None or busbar is None:
        return None
    hv = {head.source_node_id} if head.transformer_id is not None else set()
    for ln in lines:
        if ln.a in hv or ln.b in hv:
            sink.error(f"line[id={ln.lid}]", "only the transformer may leave the source's node")
    lines = [ln for ln in lines if ln.a not in hv and ln.b not in hv]
    lv_nodes = set(u_rated) - hv
    order, parent, via = _tree(sink, busbar, lines, lv_nodes)
    index = {n: i for i, n in enumerate(order)}
    for ln in lines:
        if u_rated.get(ln.a) != u_rated[busbar]:
            sink.error(f"line[id={ln.lid}]", "LV lines must have the busbar's u_rated")
            break
    loads = _loads(sink, comps, index, hv)
    if sink:
        return None
    fed = via[1:]
    cx: Callable[[Any], ComplexArray] = lambda xs: np.array(list(xs), dtype=np.complex128)  # noqa: E731
    return FeederModel(
        name=name,
        node_ids=np.array(order, dtype=np.int64),
        parent=np.array(parent, dtype=np.int64),
        u_rated=u_rated[busbar],
        line_ids=np.array([ln.lid for ln in fed if ln], dtype=np.int64),
        line_reversed=np.array(
            [ln.a != order[parent[k + 1]] for k, ln in enumerate(fed) if ln], dtype=np.bool_
        ),
        line_z1=cx(ln.z1 for ln in fed if ln),
        line_zm=cx(ln.zm for ln in fed if ln),
        line_y1_half=cx(ln.y1 for ln in fed if ln),
        line_ym_half=cx(ln.ym for ln in fed if ln),
        line_i_n=np.array([ln.i_n for ln in fed if ln], dtype=np.float64),
        head=head,
        load_ids=np.array([x[0] for x in loads], dtype=np.int64),
        load_component=tuple(x[1] for x in loads),
        load_node=np.array([x[2] for x in loads], dtype=np.int64),
        load_type=np.array([x[3] for x in loads], dtype=np.int64),
        load_status=np.array([x[4] for x in loads], dtype=np.bool_),
        load_p=np.array([x[5] for x in loads], dtype=np.float64).reshape(-1, 3),
        load_q=np.array([x[6] for x in loads], dtype=np.float64).reshape(-1, 3),
    )


def load_feeder(path: Path) -> FeederModel:
    """Read, validate and build a feeder from a power-grid-model JSON input file."""
    sink = IssueSink(str(path))
    ds = pgm_json.load(path, sink)
    if not sink and (ds.is_batch or ds.dataset_type != "input"):
        sink.error("type", f"expected a single 'input' dataset, got type {ds.dataset_type!r}")
    model = build(ds.scenarios[0] if ds.scenarios else {}, path.stem, sink) if not sink else None
    sink.raise_if_any()
    assert model is not None  # build() reported why otherwise
    return model
