"""When bleed masks go to the boards (``balancing.mode = "active"`` only).

A board stops bleeding by itself ``board_timeout_s`` after its last command, so a dead gateway
never leaves resistors burning; the masks are therefore re-sent every ``refresh_s`` even when
unchanged, and at once when the plan changes. A board that did not acknowledge is sent its mask
again next cycle.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.bms.config import BalancingSettings

U16Array = npt.NDArray[np.uint16]


class BalanceWriter:
    def __init__(self, settings: BalancingSettings, n_boards: int) -> None:
        self.settings = settings
        self.active = settings.mode == "active"
        self._sent = np.zeros(n_boards, dtype=np.uint16)
        self._acked = np.zeros(n_boards, dtype=bool)
        self._last_write = -np.inf
        self.writes = 0
        self.unacked = 0

    def due(self, masks: U16Array, now: float) -> bool:
        """Whether ``masks`` should be written at monotonic time ``now``."""
        if not self.active:
            return False
        if now - self._last_write >= self.settings.refresh_s:
            return True
        return bool(np.any(masks != self._sent) or not self._acked.all())

    def written(self, masks: U16Array, acked: npt.NDArray[np.bool_], now: float) -> None:
        self._sent[:] = masks
        self._acked[:] = acked
        self._last_write = now
        self.writes += 1
        self.unacked += int(np.count_nonzero(~acked))
