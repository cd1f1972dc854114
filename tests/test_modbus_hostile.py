"""The Modbus TCP client against a hostile real server on loopback.

The server answers each request with a reply the test chose: the valid one, or one mutated so that
it must not be taken for an answer (junk after a valid MBAP header, a wrong length, transaction id,
unit or function code, truncated, oversized, random bytes, silence, a hang-up). Every read must end
within the device's timeout, log no traceback, and give GOOD values only from a valid reply.

Modbus TCP has no checksum: a bit flipped inside the register data of a well-formed reply cannot be
told from a real value, so mutations here only touch what the client can check (the frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.modbus.device import DeviceConnection
from drivers.modbus.link import quiet_pymodbus_logging
from drivers.modbus.plan import compile_plan
from drivers.modbus.source import ModbusTcpSource, poll_forever
from drivers.modbus.types import DataType, RegisterPoint, Table
from gateway.core.model import Frame, Quality
from tests.raw_tcp import HANGUP, raw_server
from tests.tracebacks import counting_tracebacks

N_REGS = 4
TRUE = [1000 + i for i in range(N_REGS)]  # what the device really holds at holding 0..3
TIMEOUT = 0.05
PLAN = compile_plan([RegisterPoint(f"r{i}", Table.HOLDING, i, DataType.U16) for i in range(N_REGS)])

KINDS = (
    "valid",
    "junk_pdu",
    "length_field",
    "wrong_tid",
    "wrong_unit",
    "wrong_function",
    "byte_count",
    "truncated",
    "oversized",
    "random",
    "silent",
    "hangup",
)


def valid_reply(request: bytes) -> bytes:
    data = b"".join(struct.pack(">H", v) for v in TRUE)
    pdu = bytes([request[7], len(data)]) + data
    return request[:2] + b"\0\0" + struct.pack(">H", len(pdu) + 1) + request[6:7] + pdu


def mutate(kind: str, request: bytes, noise: bytes, r: int) -> bytes | None:
    """The reply of ``kind`` to ``request``; None for silence. Never a valid answer but 'valid'."""
    good = valid_reply(request)
    fc = request[7]
    if kind == "valid":
        return good
    if kind == "junk_pdu":
        junk = noise or b"\x55"
        if junk[0] in (fc, fc | 0x80):
            junk = bytes([0x55]) + junk[1:]
        return request[:2] + b"\0\0" + struct.pack(">H", len(junk) + 1) + request[6:7] + junk
    if kind == "length_field":
        length = struct.unpack(">H", good[4:6])[0]
        wrong = r % 65536
        if wrong == length:
            wrong = length + 1
        return good[:4] + struct.pack(">H", wrong) + good[6:]
    if kind == "wrong_tid":
        tid = struct.unpack(">H", request[:2])[0]
        wrong = 0 if r % 3 == 0 else (tid + 1 + r % 65535) % 65536
        return struct.pack(">H", wrong) + good[2:]
    if kind == "wrong_unit":
        return good[:6] + bytes([(request[6] + 1 + r % 255) % 256]) + good[7:]
    if kind == "wrong_function":
        other = [1, 2, 4, 0x17, 0x2B][r % 5]
        return good[:7] + bytes([other]) + good[8:]
    if kind == "byte_count":
        count = good[8]
        wrong = (count + 1 + r % 255) % 256
        return good[:8] + bytes([wrong]) + good[9:]
    if kind == "truncated":
        return good[: r % (len(good) - 1) + 1]
    if kind == "oversized":
        extra = N_REGS + 1 + r % 200  # more registers than asked, or more than a frame holds
        data = b"".join(struct.pack(">H", v) for v in range(extra))
        pdu = bytes([fc, len(data) % 256]) + data
        length = len(pdu) + 1 if r % 2 else 0xFFFF
        return request[:2] + b"\0\0" + struct.pack(">H", length) + request[6:7] + pdu
    if kind == "random":
        return noise or b"\x00"
    if kind in ("silent", "hangup"):
        return None
    raise AssertionError(kind)


@dataclass
class Script:
    """What the server sends, one step per request; the log of what it did."""

    steps: list[tuple[str, bytes, int]]
    sent: list[str] = field(default_factory=list)


def hostile_server(script: Script) -> contextlib.AbstractAsyncContextManager[int]:
    """A server that answers request i with step i of the script, then hangs up."""

    def reply(request: bytes) -> bytes | None:
        if len(script.sent) >= len(script.steps):
            return HANGUP
        kind, noise, r = script.steps[len(script.sent)]
        script.sent.append(kind)
        return HANGUP if kind == "hangup" else mutate(kind, request, noise, r)

    return raw_server(reply)


def _device(port: int) -> DeviceConnection:
    return DeviceConnection("meter1", "tcp", 1, 0.001, TIMEOUT, host="127.0.0.1", port=port)


@dataclass
class Tally:
    frames: int = 0
    corrupt: int = 0
    accepted_corrupt: int = 0
    rejected_valid: int = 0
    tracebacks: int = 0
    slowest: float = 0.0


async def run_script(script: Script, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    async with hostile_server(script) as port:
        source = ModbusTcpSource(_device(port), backoff_cap=0.001)
        try:
            while len(script.sent) < len(script.steps):
                while not source.health.due(time.monotonic()):
                    await asyncio.sleep(0.001)
                before = len(script.sent)
                t0 = loop.time()
                frame = await source.read(PLAN)
                tally.slowest = max(tally.slowest, loop.time() - t0)
                if len(script.sent) == before:
                    continue  # the connection was refused or lost before the server saw it
                _judge(script.sent[-1], frame, tally)
        finally:
            source.close()
    tally.tracebacks += len(errors)


def _judge(kind: str, frame: Frame, tally: Tally) -> None:
    tally.frames += 1
    good = frame.quality == Quality.GOOD
    if kind == "valid":
        if not good.all() or frame.values.tolist() != TRUE:
            tally.rejected_valid += 1
        return
    tally.corrupt += 1
    if good.any():
        tally.accepted_corrupt += 1


step = st.tuples(
    st.sampled_from(KINDS),
    st.binary(min_size=1, max_size=300),
    st.integers(0, 2**31),
)


@settings(
    max_examples=int(os.environ.get("GRIDGATE_FUZZ_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(step, min_size=1, max_size=25))
def test_hostile_server_never_gets_a_value_accepted_or_a_traceback(
    steps: list[tuple[str, bytes, int]],
) -> None:
    quiet_pymodbus_logging()
    tally = Tally()
    with counting_tracebacks() as tracebacks:
        asyncio.run(asyncio.wait_for(run_script(Script(steps), tally), 30))
    tally.tracebacks += tracebacks.count
    _CAMPAIGN.append(tally)
    assert tally.tracebacks == 0
    assert tally.accepted_corrupt == 0
    assert tally.rejected_valid == 0
    assert tally.slowest < TIMEOUT + 0.5 + 0.25  # the link's guard, never a hang


_CAMPAIGN: list[Tally] = []


def test_campaign_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """A seeded campaign of random steps, its counts printed (run with -s to see them)."""
    quiet_pymodbus_logging()
    rng = random.Random(11)
    total = Tally()
    n_frames = int(os.environ.get("GRIDGATE_FUZZ_FRAMES", "600"))
    weights = [6 if k == "valid" else (1 if k in ("silent", "truncated") else 3) for k in KINDS]
    steps = [
        (rng.choices(KINDS, weights)[0], rng.randbytes(rng.randint(1, 300)), rng.getrandbits(31))
        for _ in range(n_frames)
    ]
    with counting_tracebacks() as tracebacks:
        for chunk in range(0, n_frames, 50):
            tally = Tally()
            asyncio.run(asyncio.wait_for(run_script(Script(steps[chunk : chunk + 50]), tally), 60))
            total.frames += tally.frames
            total.corrupt += tally.corrupt
            total.accepted_corrupt += tally.accepted_corrupt
            total.rejected_valid += tally.rejected_valid
            total.tracebacks += tally.tracebacks
            total.slowest = max(total.slowest, tally.slowest)
    total.tracebacks += tracebacks.count
    with capsys.disabled():
        print(
            f"\nmodbus fuzz: {total.frames} replies ({total.corrupt} corrupt), "
            f"tracebacks {total.tracebacks}, values accepted from corrupt replies "
            f"{total.accepted_corrupt}, valid replies rejected {total.rejected_valid}, "
            f"slowest read {total.slowest:.3f} s (timeout {TIMEOUT} s)"
        )
    assert total.frames > n_frames * 0.9
    assert total.tracebacks == 0 and total.accepted_corrupt == 0 and total.rejected_valid == 0
    assert total.slowest < TIMEOUT + 0.75


async def test_junk_after_a_valid_header_logs_once_per_episode_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The field report: a valid MBAP header then junk logged a traceback on every poll."""
    logging.getLogger("pymodbus").setLevel(logging.NOTSET)  # as in a fresh daemon
    caplog.set_level(logging.INFO)
    steps = [("junk_pdu", b"\x55\x01\x02\x03\x04\x05", 0)] * 20 + [("valid", b"", 0)] * 3
    script = Script(steps)
    frames: list[Frame] = []
    async with hostile_server(script) as port:
        source = ModbusTcpSource(_device(port), backoff_cap=0.01)
        task = asyncio.create_task(poll_forever(source, PLAN, 0.01, frames.append, stagger=0))
        deadline = asyncio.get_running_loop().time() + 5
        while len(script.sent) < len(steps) or frames[-1].quality.tolist() != [0] * N_REGS:
            assert asyncio.get_running_loop().time() < deadline, script.sent
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        source.close()
    tracebacks = [r for r in caplog.records if r.exc_info or r.name == "asyncio"]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    # The whole journal of the episode (pymodbus's own warnings included): two lines.
    ours = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(ours) == 2, ours
    assert "meter1" in ours[0] and "undecodable reply" in ours[0]
    assert "meter1" in ours[1] and "recovered" in ours[1]
    assert np.array_equal(frames[-1].values, TRUE)


@pytest.mark.parametrize(("kind", "r"), [("wrong_function", 2), ("wrong_tid", 0)])
async def test_a_well_formed_reply_to_another_request_is_refused(kind: str, r: int) -> None:
    """Input registers answering a holding read, or transaction id 0: pymodbus let both through."""
    script = Script([(kind, b"", r)])
    async with hostile_server(script) as port:
        source = ModbusTcpSource(_device(port))
        frame = await source.read(PLAN)
        source.close()
    assert script.sent == [kind]
    assert (frame.quality == Quality.BAD).all(), frame
