"""A radial LV feeder in per-unit: the arrays the load flow kernel reads, and their units.

Units follow power-grid-model: base power 1 MVA (three-phase), per-phase voltage base
``u_rated/sqrt(3)``. Everything upstream of the LV busbar (source and transformer) is linear, so
it is folded into a Thevenin equivalent at the busbar, exact in every sequence: the sweep then
only walks the LV tree. Every series element here is sequence-symmetric, so its 3x3 phase
matrix is ``z1*I + zm*ones`` with ``zm = (z0 - z1)/3``; only (z1, zm) are stored.

The model is built from power-grid-model's JSON input by gateway/native/feeder_build.py.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

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
