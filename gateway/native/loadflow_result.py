"""Load flow results in engineering units, derived from node voltages and line series currents.

The kernel's solve ends with a reduced solution (busbar voltage and the current of each kept
segment); the per-unit phase voltages of every LV node and the series current of every line are
filled in from it by the kernel when first read. Everything else (currents at each end including
shunts, powers, loading, losses, the HV side of the transformer) follows here, vectorised over any
leading axes (time steps of a batch), and computed only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from gateway.native.feeder_model import (
    A_OP,
    BASE_POWER_1P,
    SQRT3,
    ComplexArray,
    FeederModel,
    FloatArray,
)

BoolArray = npt.NDArray[np.bool_]

_A = np.array([[1, 1, 1], [1, A_OP**2, A_OP], [1, A_OP, A_OP**2]], dtype=np.complex128)
_A_INV = np.linalg.inv(_A)


def _shunt(y1: ComplexArray, ym: ComplexArray, v: ComplexArray) -> ComplexArray:
    out: ComplexArray = y1[:, None] * v + ym[:, None] * v.sum(axis=-1, keepdims=True)
    return out


@dataclass(frozen=True, eq=False)
class HeadFlows:
    """Source-side node voltage and transformer/source currents, per unit, phases last."""

    v_source_node: ComplexArray
    i_trafo_from: ComplexArray  # into the transformer at the HV side
    i_trafo_to: ComplexArray  # into the transformer at the LV side
    i_source: ComplexArray  # injected by the source


@dataclass(frozen=True, eq=False)
class ReducedSolution:
    """What a solve keeps: per step the busbar voltage and the kept segments' currents (p.u.)."""

    v_head: FloatArray  # [..., 6] (re, im) per phase
    j_kept: FloatArray  # [..., n_kept, 6]
    status: npt.NDArray[np.int32]  # [...] GG_OK or GG_ENOCONV (then NaN)
    symmetric: bool
    line_currents: bool  # False: line results are NaN, never computed


# Fills in the full tree from a reduced solution: node voltages (True) or line currents (False).
Expander = Callable[[ReducedSolution, bool], ComplexArray]
# Node voltage magnitudes of a reduced solution, equal to abs of the Expander's voltages.
MagnitudeExpander = Callable[[ReducedSolution], FloatArray]


class FlowResult:
    """Results of one solve (shape [n, 3]) or a batch (shape [T, n, 3]); phases in the last axis.

    Non-converged solves (``converged`` False) hold NaN everywhere, never a stale solution.
    Every array is computed on first access and then kept; treat them as read-only.
    """

    def __init__(
        self,
        model: FeederModel,
        reduced: ReducedSolution,
        expand: Expander,
        iterations: npt.NDArray[np.int32],
        converged: BoolArray,
        magnitudes: MagnitudeExpander | None = None,
    ) -> None:
        self.model = model
        self.reduced = reduced
        self._expand = expand
        self._magnitudes = magnitudes
        self.iterations = iterations
        self.converged = converged

    @property
    def symmetric(self) -> bool:
        return self.reduced.symmetric

    @cached_property
    def v(self) -> ComplexArray:
        """Node voltages, p.u. of u_rated/sqrt(3)."""
        return self._expand(self.reduced, True)

    @cached_property
    def j(self) -> ComplexArray:
        """Series current of the line feeding each node (row 0: into the busbar), p.u."""
        if not self.reduced.line_currents:
            nan: ComplexArray = np.broadcast_to(np.complex128(np.nan), self.v.shape)
            return nan
        return self._expand(self.reduced, False)

    # -- nodes ---------------------------------------------------------------------------------
    @cached_property
    def u_pu(self) -> FloatArray:
        # A batch that only needs magnitudes never materialises its complex voltages (62 MB
        # for a day of minutes); once v exists, its abs is the cheaper way to the same numbers.
        if self._magnitudes is None or "v" in self.__dict__:
            return np.abs(self.v)
        return self._magnitudes(self.reduced)

    @cached_property
    def u_angle(self) -> FloatArray:
        return np.angle(self.v)

    @cached_property
    def u_volts(self) -> FloatArray:
        """Phase-to-neutral voltage magnitude, V."""
        return self.u_pu * self.model.base_v

    # -- lines (ordered as model.line_ids) -----------------------------------------------------
    @cached_property
    def _line_ends(self) -> tuple[ComplexArray, ComplexArray, ComplexArray, ComplexArray]:
        m = self.model
        parent = m.parent[1:]
        v_par = self.v[..., parent, :]
        v_chi = self.v[..., 1:, :]
        series = self.j[..., 1:, :]
        i_par = series + _shunt(m.line_y1_half, m.line_ym_half, v_par)
        i_chi = -series + _shunt(m.line_y1_half, m.line_ym_half, v_chi)
        rev = m.line_reversed[:, None]
        v_from = np.where(rev, v_chi, v_par)
        v_to = np.where(rev, v_par, v_chi)
        i_from = np.where(rev, i_chi, i_par)
        i_to = np.where(rev, i_par, i_chi)
        return v_from, v_to, i_from, i_to

    @cached_property
    def i_from(self) -> FloatArray:
        """Current magnitude per phase entering each line at its from_node, A."""
        return np.abs(self._line_ends[2]) * self.model.base_i

    @cached_property
    def i_to(self) -> FloatArray:
        return np.abs(self._line_ends[3]) * self.model.base_i

    @cached_property
    def s_from(self) -> ComplexArray:
        """Complex power per phase entering each line at its from_node, VA."""
        v_from, _, i_from, _ = self._line_ends
        return v_from * np.conj(i_from) * BASE_POWER_1P

    @cached_property
    def s_to(self) -> ComplexArray:
        _, v_to, _, i_to = self._line_ends
        return v_to * np.conj(i_to) * BASE_POWER_1P

    @cached_property
    def loading(self) -> FloatArray:
        """Largest phase current at either end over i_n, as a fraction (power-grid-model's
        ``loading``); NaN for lines without i_n."""
        worst = np.maximum(self.i_from.max(axis=-1), self.i_to.max(axis=-1))
        out: FloatArray = worst / self.model.line_i_n
        return out

    @cached_property
    def loading_pct(self) -> FloatArray:
        return 100.0 * self.loading

    # -- head and totals -----------------------------------------------------------------------
    @cached_property
    def head(self) -> HeadFlows:
        h = self.model.head
        v_lv = self.v[..., 0, :] @ _A_INV.T  # busbar, sequences 0, 1, 2
        ys = np.array(h.y_source)
        es = np.array(h.e_seq)
        if h.trafo is None:
            i_src = (es - v_lv) * ys
            return HeadFlows(self.v[..., 0, :], i_src @ _A.T * 0, i_src @ _A.T * 0, i_src @ _A.T)
        yff = np.array([b.yff for b in h.trafo])
        yft = np.array([b.yft for b in h.trafo])
        ytf = np.array([b.ytf for b in h.trafo])
        ytt = np.array([b.ytt for b in h.trafo])
        v_hv = (ys * es - yft * v_lv) / (ys + yff)
        i_f = yff * v_hv + yft * v_lv
        i_t = ytf * v_hv + ytt * v_lv
        i_src = ys * (es - v_hv)
        return HeadFlows(v_hv @ _A.T, i_f @ _A.T, i_t @ _A.T, i_src @ _A.T)

    @cached_property
    def losses_w(self) -> FloatArray:
        """Active losses of lines and transformer (source impedance excluded), W."""
        line = (self.s_from + self.s_to).real.sum(axis=(-1, -2))
        hd = self.head
        v_hv, v_lv = hd.v_source_node, self.v[..., 0, :]
        s_t = v_hv * np.conj(hd.i_trafo_from) + v_lv * np.conj(hd.i_trafo_to)
        trafo = s_t.real.sum(axis=-1) * BASE_POWER_1P if self.model.head.trafo else 0.0
        return np.asarray(line + trafo, dtype=np.float64)

    @cached_property
    def source_node_u_volts(self) -> FloatArray:
        return np.abs(self.head.v_source_node) * self.model.head.source_u_rated / SQRT3

    def trafo_loading(self) -> FloatArray:
        """Largest apparent power at either side over sn (power-grid-model's loading)."""
        hd = self.head
        s_f = np.abs(hd.v_source_node * np.conj(hd.i_trafo_from)).sum(axis=-1)
        s_t = np.abs(self.v[..., 0, :] * np.conj(hd.i_trafo_to)).sum(axis=-1)
        out: FloatArray = np.maximum(s_f, s_t) * BASE_POWER_1P / self.model.head.transformer_sn
        return out
