"""The reduced tree a load flow sweeps: only the nodes whose current changes along the feeder.

Kept are the busbar, every node with a load, injection or shunt, and the branch points between
them; chains of lines between kept nodes are summed into one segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.native.feeder_model import FeederModel, FloatArray

I32 = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Reduced:
    """The sweep's tree: kept nodes, their segments (summed line chains) and shunts."""

    kept_node: I32
    kept_parent: I32
    line_seg: I32
    z_seg: FloatArray
    y_kept: FloatArray


def reduce_tree(model: FeederModel, active: npt.NDArray[np.bool_]) -> Reduced:
    """Keep the busbar, active nodes and branch points between them; sum chains of lines.

    A node without load or shunt on a chain carries the same current in and out, and a subtree
    without any carries none, so the sweep needs only the kept nodes; the rest follow from one
    forward pass after convergence.
    """
    n = model.n_nodes
    parent = model.parent
    y1 = np.zeros(n, dtype=np.complex128)
    ym = np.zeros(n, dtype=np.complex128)
    np.add.at(y1, np.arange(1, n), model.line_y1_half)
    np.add.at(y1, parent[1:], model.line_y1_half)
    np.add.at(ym, np.arange(1, n), model.line_ym_half)
    np.add.at(ym, parent[1:], model.line_ym_half)
    active = active | (y1 != 0) | (ym != 0)
    active[0] = True
    needed = active.copy()
    needed_children = np.zeros(n, dtype=np.int64)
    for i in range(n - 1, 0, -1):
        if needed[i]:
            needed[parent[i]] = True
            needed_children[parent[i]] += 1
    kept = active | (needed & (needed_children >= 2))
    kept_nodes = np.flatnonzero(kept)
    kept_index = np.full(n, -1, dtype=np.int64)
    kept_index[kept_nodes] = np.arange(len(kept_nodes))
    z_line = np.zeros(n, dtype=np.complex128)
    zm_line = np.zeros(n, dtype=np.complex128)
    z_line[1:] = model.line_z1
    zm_line[1:] = model.line_zm
    kept_parent = np.full(len(kept_nodes), -1, dtype=np.int32)
    z_seg = np.zeros((len(kept_nodes), 4))
    for k, node in enumerate(kept_nodes[1:], start=1):
        z1 = zm = 0j
        i = int(node)
        while True:
            z1 += z_line[i]
            zm += zm_line[i]
            i = int(parent[i])
            if kept[i]:
                break
        kept_parent[k] = kept_index[i]
        z_seg[k] = (z1.real, z1.imag, zm.real, zm.imag)
    seg = np.full(n, -1, dtype=np.int32)
    below = np.full(n, -1, dtype=np.int64)  # kept node at the bottom of the chain through i
    for i in range(n - 1, -1, -1):
        if kept[i]:
            below[i] = kept_index[i]
        if needed[i] and i > 0:
            seg[i] = below[i]
            if not kept[parent[i]]:
                below[parent[i]] = below[i]
    seg[0] = 0
    y_kept = np.stack([y1.real, y1.imag, ym.real, ym.imag], axis=1)[kept_nodes]
    return Reduced(
        kept_node=kept_nodes.astype(np.int32),
        kept_parent=kept_parent,
        line_seg=seg,
        z_seg=np.ascontiguousarray(z_seg),
        y_kept=np.ascontiguousarray(y_kept),
    )


__all__ = ["Reduced", "reduce_tree"]
