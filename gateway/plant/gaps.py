"""The gap rule: time without data is not operating time.

The maintenance counter adds the time between two running samples to the operating hours. After a
PLC outage, a daemon restart or a power cut the previous sample may be hours old, and the machine
may have stopped in between; counting that stretch would bring inspections forward on a guess. So
a stretch longer than ``max_gap_s`` is dropped: counting resumes from the next sample. The first
sample after a restart is measured against the saved counters' last sample time.
"""

from __future__ import annotations

import logging

from gateway.plant.maintenance import Counters

log = logging.getLogger(__name__)


class GapRule:
    def __init__(self, device: str, max_gap_s: float) -> None:
        self.device = device
        self.max_gap_s = max_gap_s
        self._last_ts: float | None = None  # this process's last counted sample

    def apply(self, ts: float, counters: Counters) -> None:
        """Before counting the sample at ``ts``: forget the last sample time if it is too old."""
        last = self._last_ts if self._last_ts is not None else counters.last_ts
        if last is not None and ts - last > self.max_gap_s:
            log.warning(
                "%s: %.0f s without data, not counted as operating time", self.device, ts - last
            )
            counters.last_ts = None
        self._last_ts = ts
