"""Board-level alarms: a silent board, the string controller lost, and the boards' own fault bits.

A board is silent after ``lost_after`` consecutive cycles without a fresh sample: one frame lost
to noise (already retried by the driver) is not an alarm, a dead board is. Fault bits a board
reports (over-temperature of its heat sink, open sense wire, front-end fault, a balancing timer
that ran out) are raised when they appear and cleared when they go, read only from boards that
answered this cycle (a silent board's bits say nothing).
"""

from __future__ import annotations

import numpy as np

from drivers.cellbus import protocol as p
from drivers.cellbus.rack import RackSample
from gateway.core.alarms import AlarmEvent, DeviceLostAlarms
from gateway.core.model import Quality

# SAMPLE_MISSED is a one-cycle event the driver already counts; WATCHDOG_RESET is read-once.
_REPORTED = (
    p.Fault.OVER_TEMPERATURE,
    p.Fault.OPEN_WIRE,
    p.Fault.AFE_FAULT,
    p.Fault.BALANCE_TIMEOUT,
)


class BoardAlarms:
    def __init__(self, boards: tuple[str, ...], lost_after: int) -> None:
        self.boards = boards
        self._lost = DeviceLostAlarms(boards, lost_after)
        self._controller = DeviceLostAlarms(("controller",), lost_after)
        self._bits = np.zeros(len(boards), dtype=np.uint16)
        self._mask = np.uint16(sum(int(f) for f in _REPORTED))

    @property
    def silent(self) -> list[str]:
        return self._lost.lost

    def check(self, s: RackSample) -> list[AlarmEvent]:
        events = self._lost.check(s.board_ok, s.ts, "no sample")
        answered = np.array((s.string_q == Quality.GOOD,))
        events += self._controller.check(answered, s.ts, "no string reading")
        bits = np.where(s.board_ok, s.faults & self._mask, self._bits).astype(np.uint16)
        changed = bits ^ self._bits
        for b in np.flatnonzero(changed).tolist():
            for f in _REPORTED:
                if int(changed[b]) & f:
                    on = bool(int(bits[b]) & f)
                    events.append(
                        AlarmEvent(
                            f"board_{(f.name or 'fault').lower()}",
                            "raised" if on else "cleared",
                            self.boards[b],
                            s.ts,
                            cause=f"open wire mask {int(s.open_wire[b]):#06x}"
                            if f is p.Fault.OPEN_WIRE and on
                            else None,
                        )
                    )
        self._bits = bits
        return events
