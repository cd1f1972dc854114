"""Real-time unbalanced load flow of a radial LV feeder (C kernel native/loadflow.c).

A :class:`Feeder` is built once per topology: it validates the model, orders the tree, reduces it
to the nodes that matter for the sweep, and owns the kernel's workspace, so a solve allocates
nothing in C. Solves warm-start from the previous solution. A solve keeps only the reduced
solution (busbar voltage, kept-segment currents: ~5 kB a step); the full-tree voltages and line
currents are filled in by the kernel the first time a result asks for them, so a caller that
reads a few summaries, or a long batch read step by step, never pays for what it does not use.

Loads are given per load component of the model (``Loads``, W and var per phase, consumption
positive, generators negative) and, for nodes named in ``injection_nodes``, as extra per-node
per-phase powers: what a daemon that knows P/Q at connection points needs, and what the voltage
sensitivities perturb.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.core.errors import NativeError
from gateway.native.feeder_build import load_feeder
from gateway.native.feeder_model import ComplexArray, FeederModel, FloatArray
from gateway.native.ffi import check, ffi, lib, ptr
from gateway.native.loadflow_kernel import KernelModel
from gateway.native.loadflow_result import FlowResult, ReducedSolution

log = logging.getLogger(__name__)

DEFAULT_TOL: Final = 1e-10  # p.u. of voltage change between iterations
DEFAULT_MAX_ITER: Final = 50
_STATUS_ENOCONV: Final = int(lib.GG_ENOCONV)


@dataclass(frozen=True)
class Loads:
    """Active and reactive power per phase, W and var, consumption positive.

    Shape ``[n, 3]`` for one solve or ``[T, n, 3]`` for a batch; ``n`` is the number of load
    components (``Feeder.load_ids``) or of injection nodes (``Feeder.injection_node_ids``).
    """

    p: FloatArray
    q: FloatArray

    @staticmethod
    def zeros(n: int, steps: int | None = None) -> Loads:
        shape = (n, 3) if steps is None else (steps, n, 3)
        return Loads(np.zeros(shape), np.zeros(shape))


@dataclass(frozen=True, eq=False)
class Sensitivity:
    """d|V|/dP: ``du_dp[i, ph_in, node, ph]`` is the change of |V| (p.u.) at ``node``/``ph`` per
    W of extra consumption at ``node_ids[i]`` on phase ``ph_in`` (negative for a load)."""

    node_ids: npt.NDArray[np.int64]
    du_dp: FloatArray


def _as_loads(loads: Loads, n: int, batch: bool, what: str) -> tuple[FloatArray, FloatArray]:
    """Both arrays as C-contiguous float64 of the right shape: what the kernel reads in place."""
    p = np.ascontiguousarray(loads.p, dtype=np.float64)
    q = np.ascontiguousarray(loads.q, dtype=np.float64)
    ndim = 3 if batch else 2
    if p.ndim != ndim or p.shape[-2:] != (n, 3) or q.shape != p.shape:
        want = "[T, n, 3]" if batch else "[n, 3]"
        raise ValueError(f"{what}: p {p.shape} and q {q.shape} must both be {want} with n={n}")
    return p, q


class Feeder:
    """One feeder topology with its precomputed sweep order and kernel workspace."""

    def __init__(
        self,
        model: FeederModel,
        *,
        injection_nodes: Sequence[int] = (),
        tol: float = DEFAULT_TOL,
        max_iter: int = DEFAULT_MAX_ITER,
    ) -> None:
        if not (tol > 0 and max_iter > 0):
            raise ValueError(f"tol and max_iter must be positive, got {tol}, {max_iter}")
        self.model = model
        self.tol = tol
        self.max_iter = max_iter
        index = {int(nid): i for i, nid in enumerate(model.node_ids)}
        unknown = [n for n in injection_nodes if n not in index]
        if unknown:
            raise ValueError(f"injection nodes {unknown} are not LV nodes of the feeder")
        self.injection_node_ids = np.array(list(injection_nodes), dtype=np.int64)
        inj_node = np.array([index[n] for n in injection_nodes], dtype=np.int64)
        kernel = KernelModel(model, inj_node)
        # Owns the arrays the C model points into, for the Feeder's lifetime.
        self._kernel = kernel
        self._c_model = kernel.c
        self._work_v = np.zeros(6 * kernel.n_kept)
        self._work_j = np.zeros((kernel.n_kept, 6))
        self._work_s = np.zeros(6 * kernel.n_loads)
        self._work = ffi.new("gg_lf_work_t *")
        self._work_ptrs = (
            ptr("double", self._work_v, writable=True),
            ptr("double", self._work_j, writable=True),
            ptr("double", self._work_s, writable=True),
        )
        self._work.v, self._work.j, self._work.s = self._work_ptrs
        self._work.warm_valid = 0
        self._iters = np.zeros(1, dtype=np.int32)
        self._iters_ptr = ptr("int32_t", self._iters, writable=True)
        # One step's full tree while gg_lf_expand_u reduces it to magnitudes.
        self._scratch_u = np.empty(6 * model.n_nodes)
        self._scratch_u_ptr = ptr("double", self._scratch_u, writable=True)
        # Loads and injections side by side, as the kernel reads them (only with injection nodes).
        self._p = np.zeros((kernel.n_loads, 3))
        self._q = np.zeros((kernel.n_loads, 3))
        # Shared by every single-solve result as its status: read-only, so none can alter it.
        self._ok = np.array(lib.GG_OK, dtype=np.int32)
        self._failed = np.array(_STATUS_ENOCONV, dtype=np.int32)
        self._ok.flags.writeable = False
        self._failed.flags.writeable = False
        log.info(
            "feeder %s: %d nodes, %d loads, sweep over %d kept nodes",
            model.name,
            model.n_nodes,
            model.n_loads,
            kernel.n_kept,
        )

    @classmethod
    def from_pgm_json(cls, path: Path | str, **kwargs: Any) -> Feeder:
        """Read a power-grid-model JSON input file; raises ConfigError listing every problem."""
        return cls(load_feeder(Path(path)), **kwargs)

    @property
    def node_ids(self) -> npt.NDArray[np.int64]:
        return self.model.node_ids

    @property
    def load_ids(self) -> npt.NDArray[np.int64]:
        return self.model.load_ids

    @property
    def n_kept(self) -> int:
        return int(self._c_model.n_kept)

    def nominal_loads(self) -> Loads:
        """The loads as specified in the model file."""
        return Loads(self.model.load_p.copy(), self.model.load_q.copy())

    def reset(self) -> None:
        """Forget the last solution: the next solve starts flat."""
        self._work.warm_valid = 0

    def _load_arrays(
        self, loads: Loads | None, node_power: Loads | None, steps: int | None
    ) -> tuple[FloatArray, FloatArray]:
        """P and Q of every kernel load ([n, 3] or [T, n, 3]), read in place when possible."""
        nl = self.model.n_loads
        batch = steps is not None
        if loads is None:
            p, q = self.model.load_p, self.model.load_q
        else:
            p, q = _as_loads(loads, nl, batch, "loads")
        n_inj = len(self.injection_node_ids)
        if n_inj == 0:
            if node_power is not None:
                raise ValueError("node_power given but the feeder has no injection_nodes")
            return p, q
        pp: FloatArray
        qq: FloatArray
        if batch:
            pp = np.empty((p.shape[0], nl + n_inj, 3))
            qq = np.empty_like(pp)
        else:
            pp, qq = self._p, self._q
        pp[..., :nl, :] = p
        qq[..., :nl, :] = q
        if node_power is None:
            pp[..., nl:, :] = 0.0
            qq[..., nl:, :] = 0.0
        else:
            pi, qi = _as_loads(node_power, n_inj, batch, "node_power")
            pp[..., nl:, :] = pi
            qq[..., nl:, :] = qi
        return pp, qq

    def solve(
        self,
        loads: Loads | None = None,
        *,
        node_power: Loads | None = None,
        symmetric: bool = False,
        warm: bool = True,
    ) -> FlowResult:
        """One load flow; ``loads=None`` uses the model's specified loads.

        A solve that does not converge returns ``converged`` False with NaN results (and the
        next solve starts flat); it is logged by the caller, which knows the context.
        """
        p, q = self._load_arrays(loads, node_power, None)
        status = lib.gg_lf_solve(
            self._c_model,
            self._work,
            ptr("double", p),
            ptr("double", q),
            int(symmetric),
            int(warm),
            self.tol,
            self.max_iter,
            self._iters_ptr,
        )
        ok = status == 0
        if not ok and status != _STATUS_ENOCONV:
            check(status, "gg_lf_solve")
        if ok:
            v_head = self._work_v[:6].copy()
            j_kept = self._work_j.copy()
        else:
            v_head = np.full(6, np.nan)
            j_kept = np.full_like(self._work_j, np.nan)
        red = ReducedSolution(v_head, j_kept, self._ok if ok else self._failed, symmetric, True)
        return FlowResult(
            self.model,
            red,
            self._expand,
            np.array(self._iters[0], dtype=np.int32),
            np.array(ok),
        )

    def _expand(self, red: ReducedSolution, voltages: bool) -> ComplexArray:
        """The kernel's fill-in of every node voltage (or line current) of a reduced solution."""
        out = np.empty((*red.status.shape, self.model.n_nodes, 3), dtype=np.complex128)
        out_ptr = ffi.cast("double *", ffi.from_buffer(out, require_writable=True))
        check(
            lib.gg_lf_expand(
                self._c_model,
                red.status.size,
                int(red.symmetric),
                ptr("int32_t", red.status),
                ptr("double", red.v_head),
                ptr("double", red.j_kept),
                out_ptr if voltages else ffi.NULL,
                ffi.NULL if voltages else out_ptr,
            ),
            "gg_lf_expand",
        )
        return out

    def _expand_u(self, red: ReducedSolution) -> FloatArray:
        """The kernel's node voltage magnitudes of a reduced solution, without the complex tree."""
        out = np.empty((*red.status.shape, self.model.n_nodes, 3), dtype=np.float64)
        check(
            lib.gg_lf_expand_u(
                self._c_model,
                red.status.size,
                int(red.symmetric),
                ptr("int32_t", red.status),
                ptr("double", red.v_head),
                ptr("double", red.j_kept),
                self._scratch_u_ptr,
                ffi.cast("double *", ffi.from_buffer(out, require_writable=True)),
            ),
            "gg_lf_expand_u",
        )
        return out

    def solve_batch(
        self,
        profiles: Loads,
        *,
        node_power: Loads | None = None,
        symmetric: bool = False,
        warm: bool = False,
        line_currents: bool = True,
    ) -> FlowResult:
        """T solves in one kernel call, each warm-started from the previous step.

        Results have a leading time axis; ``converged[t]`` says which steps hold a solution.
        Node voltages and line currents of all T steps are filled in when first read (62 MB
        each for a day of minutes on a 906-node feeder); ``line_currents=False`` makes the line
        results NaN without ever computing them.
        """
        steps = np.asarray(profiles.p).shape[0] if np.asarray(profiles.p).ndim == 3 else -1
        if steps < 0:
            raise ValueError("profiles must be [T, n_loads, 3]")
        p, q = self._load_arrays(profiles, node_power, steps)
        v_head = np.empty((steps, 6))
        j_kept = np.empty((steps, *self._work_j.shape))
        iters = np.empty(steps, dtype=np.int32)
        status = np.empty(steps, dtype=np.int32)
        failed = check(
            lib.gg_lf_solve_batch(
                self._c_model,
                self._work,
                steps,
                ptr("double", p),
                ptr("double", q),
                int(symmetric),
                int(warm),
                self.tol,
                self.max_iter,
                ptr("double", v_head, writable=True),
                ptr("double", j_kept, writable=True),
                ptr("int32_t", iters, writable=True),
                ptr("int32_t", status, writable=True),
            ),
            "gg_lf_solve_batch",
        )
        if failed:
            log.warning(
                "feeder %s: %d of %d steps did not converge", self.model.name, failed, steps
            )
        red = ReducedSolution(v_head, j_kept, status, symmetric, line_currents)
        # Magnitudes without the complex tree pay off for a batch (no 62 MB round trip through
        # memory); one step's tree stays in cache anyway, and numpy's abs of it is quicker.
        return FlowResult(self.model, red, self._expand, iters, status == 0, self._expand_u)

    def sensitivities(
        self,
        node_ids: Sequence[int],
        loads: Loads | None = None,
        *,
        node_power: Loads | None = None,
        delta_w: float = 100.0,
    ) -> Sensitivity:
        """d|V|/dP at every node for extra consumption at each of ``node_ids`` (injection nodes),
        per phase, by central differences of warm-started solves around the operating point."""
        inj = {int(n): i for i, n in enumerate(self.injection_node_ids)}
        missing = [n for n in node_ids if n not in inj]
        if missing:
            raise ValueError(f"nodes {missing} are not injection_nodes of this Feeder")
        base = Loads.zeros(len(inj)) if node_power is None else node_power
        out = np.empty((len(node_ids), 3, self.model.n_nodes, 3))
        for a, nid in enumerate(node_ids):
            for ph in range(3):
                u = []
                for sign in (1.0, -1.0):
                    p = np.array(base.p, dtype=np.float64, copy=True)
                    p[inj[int(nid)], ph] += sign * delta_w
                    res = self.solve(loads, node_power=Loads(p, np.asarray(base.q)))
                    if not bool(res.converged):
                        raise NativeError(f"sensitivity solve at node {nid} did not converge")
                    u.append(res.u_pu)
                out[a, ph] = (u[0] - u[1]) / (2.0 * delta_w)
        return Sensitivity(np.array(list(node_ids), dtype=np.int64), out)
