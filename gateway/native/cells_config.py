"""Noise, fault thresholds and balancing policy of one string: the kernel's gg_cells_cfg_t."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.core.errors import ConfigError, ConfigIssue
from gateway.native.cells_flags import BalanceMode
from gateway.native.ffi import assert_layout
from gateway.native.ocv import LFP_HYSTERESIS_GAMMA, Chemistry

_CFG_FLOATS: Final = (
    "q_soc",
    "q_v1",
    "q_h",
    "r_v",
    "hyst_gamma",
    "v_lo",
    "v_hi",
    "jump_v",
    "ov_set",
    "ov_clear",
    "uv_set",
    "uv_clear",
    "ot_set",
    "ot_clear",
    "ut_set",
    "ut_clear",
    "dev_k_set",
    "dev_k_clear",
    "dev_sigma_min",
    "stale_s",
    "bal_bleed_ohm",
    "bal_soc_window",
    "bal_v_window",
    "bal_min_v",
    "bal_max_temp",
    "bal_max_age_s",
)
_CFG_INTS: Final = (
    "debounce_set",
    "debounce_clear",
    "bal_mode",
    "cells_per_board",
    "bal_max_per_board",
)
CFG_DTYPE: Final = np.dtype(
    [(name, np.float64) for name in _CFG_FLOATS]
    + [(name, np.int32) for name in _CFG_INTS]
    + [("pad", np.int32)]
)
assert_layout("gg_cells_cfg_t", CFG_DTYPE)

MAX_CELLS_PER_BOARD: Final = 32
MAX_DEBOUNCE: Final = 255


@dataclass(frozen=True)
class CellsConfig:
    """Noise, fault thresholds and balancing policy of one string (see gridgate.h, cells).

    Defaults suit an NMC string read at 10 Hz; :meth:`for_chemistry` gives LFP's. Voltages in V,
    temperatures in degC, times in s, noise as variances (process noise per second).
    """

    q_soc: float = 1e-8
    q_v1: float = 1e-7
    r_v: float = 2.5e-5  # (5 mV)^2: AFE noise plus model error
    q_h: float = 0.0  # the hysteresis state follows the current; no noise of its own
    hyst_gamma: float = 0.0  # NMC: a few mV of hysteresis, ignored (see ocv.py)
    v_lo: float = 0.5  # below: open sense wire
    v_hi: float = 5.0  # above: beyond any lithium cell
    jump_v: float = 0.5  # innovation a current step cannot explain
    ov_set: float = 4.25
    ov_clear: float = 4.20
    uv_set: float = 2.80
    uv_clear: float = 3.00
    ot_set: float = 55.0
    ot_clear: float = 50.0
    ut_set: float = -10.0
    ut_clear: float = -5.0
    dev_k_set: float = 6.0
    dev_k_clear: float = 4.0
    dev_sigma_min: float = 0.005
    stale_s: float = 2.0
    bal_bleed_ohm: float = 33.0
    bal_soc_window: float = 0.01
    bal_v_window: float = 0.01
    bal_min_v: float = 3.3
    bal_max_temp: float = 50.0
    bal_max_age_s: float = 1.0
    debounce_set: int = 3
    debounce_clear: int = 5
    bal_mode: BalanceMode = BalanceMode.SOC
    cells_per_board: int = 14
    bal_max_per_board: int = 4

    @classmethod
    def for_chemistry(cls, chemistry: Chemistry, **overrides: Any) -> CellsConfig:
        """Thresholds and measurement noise of ``chemistry``; keywords override any field."""
        if Chemistry(chemistry) is Chemistry.LFP:
            # The hysteresis is modelled (ocv.hysteresis_table), so r_v covers the AFE and the
            # 1RC-for-2RC model error only. On the plateau 1 mV is 1-2 % of SOC: the
            # polarisation may not wander on its own (small q_v1), or it absorbs the OCV offset
            # that tells the SOC.
            base = cls(
                r_v=1e-4,
                q_v1=1e-8,
                hyst_gamma=LFP_HYSTERESIS_GAMMA,
                ov_set=3.65,
                ov_clear=3.60,
                uv_set=2.50,
                uv_clear=2.70,
                bal_min_v=3.1,
            )
        else:
            base = cls()
        return dataclasses.replace(base, **overrides)

    def issues(self, where: str = "cells") -> list[ConfigIssue]:
        """Every problem of this config, as config issues under the key path ``where``."""
        out: list[ConfigIssue] = []

        def bad(field: str, reason: str) -> None:
            out.append(ConfigIssue("<cells>", f"{where}.{field}", reason))

        for name in _CFG_FLOATS:
            if math.isnan(getattr(self, name)):
                bad(name, "must be a number, not NaN")
        for name in ("q_soc", "q_v1", "q_h", "hyst_gamma", "bal_soc_window", "bal_v_window"):
            if not getattr(self, name) >= 0.0 or math.isinf(getattr(self, name)):
                bad(name, "must be finite and >= 0")
        for name in ("r_v", "dev_sigma_min", "bal_bleed_ohm"):
            if not (getattr(self, name) > 0.0 and math.isfinite(getattr(self, name))):
                bad(name, "must be finite and > 0")
        if not (0.0 < self.v_lo < self.v_hi and math.isfinite(self.v_hi)):
            bad("v_hi", "0 < v_lo < v_hi, both finite")
        if not self.jump_v > 0.0:
            bad("jump_v", "must be > 0 (inf disables the jump check)")
        for set_, clear, above in (
            ("ov_set", "ov_clear", True),
            ("uv_set", "uv_clear", False),
            ("ot_set", "ot_clear", True),
            ("ut_set", "ut_clear", False),
        ):
            s, c = getattr(self, set_), getattr(self, clear)
            if not (c <= s if above else c >= s):
                bad(clear, f"must lie inside {set_} ({'<=' if above else '>='} {s})")
        if not 0.0 <= self.dev_k_clear <= self.dev_k_set:
            bad("dev_k_clear", "0 <= dev_k_clear <= dev_k_set")
        for name in ("stale_s", "bal_max_age_s"):
            if not getattr(self, name) >= 0.0:
                bad(name, "must be >= 0")
        for name in ("debounce_set", "debounce_clear"):
            if not 1 <= getattr(self, name) <= MAX_DEBOUNCE:
                bad(name, f"must be 1..{MAX_DEBOUNCE} cycles")
        if self.bal_mode not in tuple(BalanceMode):
            bad("bal_mode", f"must be one of {[m.name.lower() for m in BalanceMode]}")
        if not 1 <= self.cells_per_board <= MAX_CELLS_PER_BOARD:
            bad("cells_per_board", f"must be 1..{MAX_CELLS_PER_BOARD}")
        elif not 0 <= self.bal_max_per_board <= self.cells_per_board:
            bad("bal_max_per_board", "must be 0..cells_per_board")
        return out

    def to_struct(self) -> npt.NDArray[np.void]:
        """The one-element gg_cells_cfg_t array the kernel reads; ConfigError when invalid."""
        problems = self.issues()
        if problems:
            raise ConfigError(problems)
        rec = np.zeros(1, dtype=CFG_DTYPE)
        for name in _CFG_FLOATS + _CFG_INTS:
            rec[name] = getattr(self, name)
        return rec


__all__ = ["CFG_DTYPE", "MAX_CELLS_PER_BOARD", "MAX_DEBOUNCE", "CellsConfig"]
