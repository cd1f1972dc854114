"""Numpy reference of the backward/forward sweep, for cross-checking the C kernel.

Written for clarity, not speed: every node of the full tree takes part in every iteration, every
series element is an explicit 3x3 phase matrix built from its sequence impedances, loads are
evaluated one by one. Same method and stopping rule as native/loadflow.c: iterate until the
largest change of any node voltage (complex, p.u.) is below ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.native.feeder_model import A_OP, ComplexArray, FeederModel


@dataclass(frozen=True)
class RefResult:
    v: ComplexArray  # [n_nodes, 3] p.u.
    j: ComplexArray  # [n_nodes - 1, 3] series current of line k, towards node k + 1 (p.u.)
    iterations: int
    converged: bool


def _matrix(z1: complex, zm: complex) -> ComplexArray:
    return z1 * np.eye(3, dtype=np.complex128) + zm * np.ones((3, 3), dtype=np.complex128)


def solve_ref(
    model: FeederModel,
    s_load: ComplexArray,
    *,
    symmetric: bool = False,
    tol: float = 1e-10,
    max_iter: int = 100,
    v_start: ComplexArray | None = None,
) -> RefResult:
    """Sweep with loads ``s_load`` ([n_loads, 3] complex p.u. per phase, consumption positive)."""
    n = model.n_nodes
    head = model.head
    e = head.e_th.copy()
    z_th = _matrix(head.z_th1, head.z_thm)
    z_line = [_matrix(a, b) for a, b in zip(model.line_z1, model.line_zm, strict=True)]
    y_node = [np.zeros((3, 3), dtype=np.complex128) for _ in range(n)]
    for k in range(n - 1):
        y = _matrix(model.line_y1_half[k], model.line_ym_half[k])
        y_node[k + 1] += y
        y_node[int(model.parent[k + 1])] += y
    s = s_load.copy()
    if symmetric:
        # Balanced: each phase carries the mean of the three, the network only sees z1.
        s[:] = s.mean(axis=1, keepdims=True)
        rot = np.array([1.0, A_OP * A_OP, A_OP])
        e = e[0] * rot
        z_th = head.z_th1 * np.eye(3, dtype=np.complex128)
        z_line = [z1 * np.eye(3, dtype=np.complex128) for z1 in model.line_z1]
        # Balanced: only the positive-sequence shunt y1 = diagonal - off-diagonal.
        y_node = [np.diag(np.diag(y) - y[0, 1]) for y in y_node]
    v = np.tile(e, (n, 1)) if v_start is None else v_start.copy()
    exponent = model.load_type.astype(np.float64)  # |V|^0, |V|^2, |V|^1 scaling of power
    exponent[model.load_type == 1] = 2.0
    exponent[model.load_type == 2] = 1.0
    j = np.zeros((n, 3), dtype=np.complex128)
    for it in range(1, max_iter + 1):
        inj = np.zeros((n, 3), dtype=np.complex128)
        for k in range(model.n_loads):
            node = int(model.load_node[k])
            for ph in range(3):
                vk = v[node, ph]
                sk = s[k, ph] * abs(vk) ** exponent[k]
                inj[node, ph] += np.conj(sk / vk)
        for node in range(n):
            inj[node] += y_node[node] @ v[node]
        j = inj.copy()
        for node in range(n - 1, 0, -1):
            j[int(model.parent[node])] += j[node]
        v_new = np.empty_like(v)
        v_new[0] = e - z_th @ j[0]
        for node in range(1, n):
            v_new[node] = v_new[int(model.parent[node])] - z_line[node - 1] @ j[node]
        change = float(np.max(np.abs(v_new - v)))
        v = v_new
        if not np.all(np.isfinite(v)) or np.min(np.abs(v)) < 1e-6:
            break
        if change < tol:
            return RefResult(v, j[1:], it, True)
    nan = np.full((n, 3), np.nan + 0j)
    return RefResult(nan, nan[1:], max_iter, False)
