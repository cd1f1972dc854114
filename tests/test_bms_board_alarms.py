"""Board alarms, vectorised over the rack, against the per-device alarms they replaced: the same
events, in the same order, with the same texts, on random answer/fault sequences."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.cellbus import protocol as p
from drivers.cellbus.rack import N_KINDS, RackSample
from gateway.bms.board_alarms import BoardAlarms
from gateway.core.alarms import AlarmEvent, DeviceLostAlarm, DeviceLostAlarms
from gateway.core.model import Frame, Quality

BOARDS = ("l0/1", "l0/2", "l1/1", "l1/2")
_REPORTED = (
    p.Fault.OVER_TEMPERATURE,
    p.Fault.OPEN_WIRE,
    p.Fault.AFE_FAULT,
    p.Fault.BALANCE_TIMEOUT,
)


class PerBoardReference:
    """The board alarms as they were: one DeviceLostAlarm and one frame per board per cycle."""

    def __init__(self, boards: tuple[str, ...], lost_after: int) -> None:
        self.boards = boards
        self.lost = [DeviceLostAlarm(b, lost_after) for b in boards]
        self.controller = DeviceLostAlarm("controller", lost_after)
        self.bits = [0] * len(boards)

    @staticmethod
    def frame(device: str, ts: float, ok: bool) -> Frame:
        q = Quality.GOOD if ok else Quality.BAD
        return Frame(device, ts, np.zeros(1), np.full(1, q, dtype=np.uint8))

    def check(self, s: RackSample) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        for b, alarm in enumerate(self.lost):
            ok = bool(s.board_ok[b])
            events += alarm.check(self.frame(alarm.device, s.ts, ok), "no sample")
        ok = s.string_q == Quality.GOOD
        events += self.controller.check(self.frame("controller", s.ts, ok), "no string reading")
        for b in range(len(self.boards)):
            new = int(s.faults[b]) if s.board_ok[b] else self.bits[b]
            for f in _REPORTED:
                if (new ^ self.bits[b]) & f:
                    on = bool(new & f)
                    cause = None
                    if f is p.Fault.OPEN_WIRE and on:
                        cause = f"open wire mask {int(s.open_wire[b]):#06x}"
                    events.append(
                        AlarmEvent(
                            f"board_{(f.name or 'fault').lower()}",
                            "raised" if on else "cleared",
                            self.boards[b],
                            s.ts,
                            cause=cause,
                        )
                    )
            self.bits[b] = new & sum(int(f) for f in _REPORTED)
        return events


def sample(ts: float, ok: list[bool], faults: list[int], string_ok: bool) -> RackSample:
    n = len(ok)
    return RackSample(
        seq=1,
        ts=ts,
        duration_s=0.01,
        cell_v=np.zeros(n),
        cell_q=np.zeros(n, dtype=np.uint8),
        temp_c=np.zeros(n),
        temp_q=np.zeros(n, dtype=np.uint8),
        board_ok=np.array(ok, dtype=bool),
        faults=np.array([f if o else 0 for f, o in zip(faults, ok, strict=True)], np.uint16),
        open_wire=np.array([0x0102 * (b + 1) for b in range(n)], dtype=np.uint16),
        balancing=np.zeros(n, dtype=np.uint16),
        balance_left_s=np.zeros(n),
        current_a=0.0,
        string_v=0.0,
        string_q=Quality.GOOD if string_ok else Quality.BAD,
        errors=np.zeros((n, N_KINDS), dtype=np.uint32),
        controller_errors=np.zeros(N_KINDS, dtype=np.uint32),
    )


_cycle = st.tuples(
    st.lists(st.booleans(), min_size=len(BOARDS), max_size=len(BOARDS)),
    st.lists(
        st.sampled_from([0, 0x0001, 0x0002, 0x0006, 0x0010, 0x0028, 0xFFFF]),
        min_size=len(BOARDS),
        max_size=len(BOARDS),
    ),
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 4), st.lists(_cycle, max_size=30))
def test_same_events_as_per_board_alarms(
    lost_after: int, cycles: list[tuple[list[bool], list[int], bool]]
) -> None:
    alarms, ref = BoardAlarms(BOARDS, lost_after), PerBoardReference(BOARDS, lost_after)
    for i, (ok, faults, string_ok) in enumerate(cycles):
        s = sample(float(i), ok, faults, string_ok)
        assert alarms.check(s) == ref.check(s)
        assert alarms.silent == [a.device for a in ref.lost if a.lost]


def test_lost_after_three_silent_cycles_cleared_on_the_first_answer() -> None:
    lost = DeviceLostAlarms(("a", "b", "c"), lost_after=3)
    silent_b = np.array([True, False, True])
    assert lost.check(silent_b, 0.0) == []
    assert lost.check(silent_b, 0.1) == []
    assert lost.check(np.ones(3, dtype=bool), 0.2) == []  # an answer resets the count
    assert lost.check(silent_b, 0.3) == [] and lost.check(silent_b, 0.4) == []
    events = lost.check(silent_b, 0.5, "no sample")
    assert events == [AlarmEvent("device_lost", "raised", "b", 0.5, cause="no sample")]
    assert lost.lost == ["b"]
    assert lost.check(silent_b, 0.6) == []  # raised once
    both = np.array([True, True, False])
    assert lost.check(both, 0.7) == [AlarmEvent("device_lost", "cleared", "b", 0.7)]
    assert lost.lost == []
    assert lost.check(np.zeros(3, dtype=bool), 0.8) == []  # c's count restarted at its answer
