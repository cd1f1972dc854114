"""The load flow kernel's model (gg_lf_model_t) of one feeder and the arrays it points into."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.native.feeder_model import BASE_POWER_1P, FeederModel
from gateway.native.ffi import check, ffi, lib, ptr
from gateway.native.loadflow_reduce import reduce_tree


class KernelModel:
    """The checked gg_lf_model_t of ``model`` with extra injection points at ``inj_node``.

    Kernel loads are the model's load components followed by one per injection node.
    ``c`` holds raw pointers into :attr:`arrays`: keep this object alive while C uses it.
    """

    def __init__(self, model: FeederModel, inj_node: npt.NDArray[np.int64]) -> None:
        active = np.zeros(model.n_nodes, dtype=np.bool_)
        active[model.load_node] = True
        active[inj_node] = True
        red = reduce_tree(model, active)
        kept_of = np.full(model.n_nodes, -1, dtype=np.int32)
        kept_of[red.kept_node] = np.arange(len(red.kept_node), dtype=np.int32)
        nodes = np.concatenate([model.load_node, inj_node])
        load_mask = np.concatenate([model.load_status, np.ones(len(inj_node), dtype=np.bool_)])
        load_type = np.concatenate([model.load_type, np.zeros(len(inj_node), dtype=np.int64)])
        z_line = np.zeros((model.n_nodes, 4))
        z_line[1:] = np.stack(
            [model.line_z1.real, model.line_z1.imag, model.line_zm.real, model.line_zm.imag], 1
        )
        # Arrays the C model points into: owned here for this object's lifetime, never replaced.
        self.arrays: dict[str, npt.NDArray[Any]] = {
            "parent": model.parent.astype(np.int32),
            "z_line": z_line,
            "line_seg": red.line_seg,
            "kept_parent": red.kept_parent,
            "kept_node": red.kept_node,
            "z_seg": red.z_seg,
            "y_kept": red.y_kept,
            "load_kept": kept_of[nodes].astype(np.int32),
            "load_type": load_type.astype(np.int32),
            # The kernel reads loads in W/var as given; a switched-off load weighs nothing.
            "load_scale": np.where(load_mask, 1.0 / BASE_POWER_1P, 0.0),
        }
        self.c = ffi.new("gg_lf_model_t *")
        self._keep: list[Any] = []
        for name, arr in self.arrays.items():
            ctype = "int32_t" if arr.dtype == np.int32 else "double"
            cdata = ptr(ctype, arr)
            self._keep.append(cdata)
            setattr(self.c, name, cdata)
        self.c.n_nodes = model.n_nodes
        self.n_kept = len(red.kept_node)
        self.n_loads = len(nodes)
        self.c.n_kept = self.n_kept
        self.c.n_loads = self.n_loads
        e = model.head.e_th
        for p in range(3):
            self.c.e_th[2 * p] = e[p].real
            self.c.e_th[2 * p + 1] = e[p].imag
        z1, zm = model.head.z_th1, model.head.z_thm
        for i, x in enumerate((z1.real, z1.imag, zm.real, zm.imag)):
            self.c.z_th[i] = x
        check(lib.gg_lf_check(self.c), "gg_lf_check")


__all__ = ["KernelModel"]
