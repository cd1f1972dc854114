"""The OPC UA driver against a real asyncua server that publishes hostile values.

Each round writes to every node a value drawn from: a good number, a Bad or Uncertain status
code (with a number that must not be taken), the wrong type (string, bytes, date, bool-looking
text, localized text, a GUID), NaN and infinities, an empty, small or huge array, an empty
variant. The driver (subscription, then polling) must keep delivering frames, log no traceback,
and mark GOOD only a finite scalar number written with a Good status (UNCERTAIN only one written
Uncertain): a value from a corrupt input is never accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import os
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from asyncua import Server, ua
from asyncua.ua.status_codes import StatusCodes
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.opcua.client import OpcUaSource
from drivers.opcua.config import OpcUaConfig, parse_opcua
from drivers.opcua.quality import sample
from gateway.config.issues import IssueSink
from gateway.core.model import Frame, Quality
from tests.tracebacks import counting_tracebacks

N_NODES = 12
NS_URI = "urn:gridgate:test:hostile"
KINDS = (
    "good",
    "good_int",
    "uncertain",
    "bad_status",
    "string",
    "bytes",
    "datetime",
    "text",
    "guid",
    "nan",
    "inf",
    "empty_array",
    "array",
    "huge_array",
    "null",
)
HUGE = int(os.environ.get("GRIDGATE_FUZZ_HUGE", "200000"))  # elements of a huge Double array


@dataclass
class Node:
    nodeid: ua.NodeId
    good: set[float] = field(default_factory=set)  # accepted as GOOD if seen
    uncertain: set[float] = field(default_factory=set)
    poison: set[float] = field(default_factory=set)  # numbers that came with corrupt inputs


@dataclass
class Tally:
    inputs: int = 0
    corrupt: int = 0
    frames: int = 0
    accepted_corrupt: int = 0
    tracebacks: int = 0
    good: int = 0  # values accepted GOOD (each checked against what was written)
    uncertain: int = 0
    sessions: int = 0


class Hostile:
    def __init__(self) -> None:
        self.server = Server()
        self.nodes: list[Node] = []
        self.url = ""

    async def start(self) -> None:
        server = self.server
        await server.init()
        server.set_endpoint("opc.tcp://127.0.0.1:0")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NS_URI)
        folder = await server.nodes.objects.add_object(ns, "Hostile")
        for i in range(N_NODES):
            var = await folder.add_variable(
                ua.NodeId(f"hostile.{i}", ns), f"v{i}", ua.Variant(0.0, ua.VariantType.Double)
            )
            self.nodes.append(Node(var.nodeid, good={0.0}))
        await server.start()
        assert server.bserver is not None
        self.url = f"opc.tcp://127.0.0.1:{server.bserver.port}"

    async def stop(self) -> None:
        await self.server.stop()

    async def write(self, node: Node, kind: str, rng: random.Random, tally: Tally) -> None:
        number = rng.uniform(-1e6, 1e6)
        status = ua.StatusCode(ua.UInt32(StatusCodes.Good))
        variant: ua.Variant
        corrupt = True
        if kind == "good":
            variant = ua.Variant(number, ua.VariantType.Double)
            node.good.add(number)
            corrupt = False
        elif kind == "good_int":
            whole = rng.randint(-(2**31), 2**31 - 1)
            variant = ua.Variant(whole, ua.VariantType.Int32)
            node.good.add(float(whole))
            corrupt = False
        elif kind == "uncertain":
            variant = ua.Variant(number, ua.VariantType.Double)
            status = ua.StatusCode(ua.UInt32(StatusCodes.UncertainLastUsableValue))
            node.uncertain.add(number)
            corrupt = False
        elif kind == "bad_status":
            variant = ua.Variant(number, ua.VariantType.Double)
            code = rng.choice(
                [StatusCodes.BadSensorFailure, StatusCodes.BadOutOfService, 0x80000000, 0xC0000000]
            )
            status = ua.StatusCode(ua.UInt32(code))
            node.poison.add(number)
        elif kind == "string":
            variant = ua.Variant(repr(number), ua.VariantType.String)
            node.poison.add(number)
        elif kind == "bytes":
            variant = ua.Variant(rng.randbytes(rng.randint(0, 64)), ua.VariantType.ByteString)
        elif kind == "datetime":
            variant = ua.Variant(datetime.datetime.now(datetime.UTC), ua.VariantType.DateTime)
        elif kind == "text":
            variant = ua.Variant(ua.LocalizedText("1.0"), ua.VariantType.LocalizedText)
        elif kind == "guid":
            variant = ua.Variant(uuid.UUID(int=rng.getrandbits(128)), ua.VariantType.Guid)
        elif kind == "nan":
            variant = ua.Variant(math.nan, ua.VariantType.Double)
        elif kind == "inf":
            variant = ua.Variant(rng.choice([math.inf, -math.inf]), ua.VariantType.Float)
        elif kind == "empty_array":
            variant = ua.Variant([], ua.VariantType.Double)
        elif kind == "array":
            values = [rng.uniform(-1e6, 1e6) for _ in range(rng.randint(1, 8))]
            variant = ua.Variant(values, ua.VariantType.Double)
            node.poison.update(values)
        elif kind == "huge_array":
            variant = ua.Variant(np.full(HUGE, number).tolist(), ua.VariantType.Double)
            node.poison.add(number)
        elif kind == "null":
            variant = ua.Variant()
        else:
            raise AssertionError(kind)
        tally.inputs += 1
        tally.corrupt += corrupt
        dv = ua.DataValue(variant, StatusCode=status)
        await self.server.write_attribute_value(node.nodeid, dv)


def judge(hostile: Hostile, frame: Frame) -> int:
    """Values in ``frame`` that must not be there; 0 when every accepted value is legitimate."""
    wrong = 0
    for node, value, quality in zip(hostile.nodes, frame.values, frame.quality, strict=True):
        q = Quality(int(quality))
        if q is Quality.BAD:
            wrong += not math.isnan(value)
        elif q is Quality.GOOD:
            wrong += value not in node.good or value in node.poison
        else:
            wrong += value not in node.uncertain or value in node.poison
    return wrong


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def hostile() -> AsyncIterator[Hostile]:
    server = Hostile()
    await server.start()
    yield server
    await server.stop()


def make_config(hostile: Hostile, **extra: Any) -> OpcUaConfig:
    table = {
        "endpoint": hostile.url,
        "security_policy": "None",
        "security_mode": "None",
        "allow_insecure": True,
        "sampling_interval": 0.05,
        "publishing_interval": 0.05,
        "reconnect_max": 0.3,
        "nodes": [
            {"name": f"v{i}", "node_id": n.nodeid.to_string()} for i, n in enumerate(hostile.nodes)
        ],
        **extra,
    }
    sink = IssueSink("test.toml")
    config = parse_opcua(sink, table)
    sink.raise_if_any()
    assert config is not None
    return config


async def campaign(hostile: Hostile, acquisition: str, rounds: int, seed: int) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    weights = [4 if k in ("good", "good_int") else (1 if k == "huge_array" else 2) for k in KINDS]
    source = OpcUaSource(make_config(hostile, acquisition=acquisition), "hostile")
    frames: asyncio.Queue[Frame] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))

    def on_frame(frame: Frame) -> None:
        frames.put_nowait(frame)

    with counting_tracebacks() as tracebacks:
        task = asyncio.create_task(source.run(on_frame))
        try:
            await asyncio.wait_for(frames.get(), 10.0)  # connected
            for _ in range(rounds):
                for node in hostile.nodes:
                    await hostile.write(node, rng.choices(KINDS, weights)[0], rng, tally)
                # Frames keep coming after every kind of input: no hang, no dead session.
                frame = await asyncio.wait_for(frames.get(), 10.0)
                await asyncio.sleep(0.06)
                while True:
                    tally.frames += 1
                    tally.accepted_corrupt += judge(hostile, frame)
                    tally.good += int(np.count_nonzero(frame.quality == Quality.GOOD))
                    tally.uncertain += int(np.count_nonzero(frame.quality == Quality.UNCERTAIN))
                    if frames.empty():
                        break
                    frame = frames.get_nowait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            loop.set_exception_handler(previous)
    tally.sessions = source.sessions
    tally.tracebacks = len(errors) + tracebacks.count
    assert not tracebacks.messages, tracebacks.messages[:3]
    return tally


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("acquisition", ["subscribe", "poll"])
async def test_hostile_values_are_never_accepted(hostile: Hostile, acquisition: str) -> None:
    rounds = int(os.environ.get("GRIDGATE_FUZZ_ROUNDS", "25"))
    tally = await campaign(hostile, acquisition, rounds, seed=11)
    print(
        f"\nopcua fuzz ({acquisition}): {tally.inputs} inputs ({tally.corrupt} corrupt), "
        f"{tally.frames} frames ({tally.good} GOOD and {tally.uncertain} UNCERTAIN values, "
        f"each one written so), {tally.sessions} session(s), tracebacks {tally.tracebacks}, "
        f"values accepted from corrupt inputs {tally.accepted_corrupt}"
    )
    assert tally.frames >= rounds
    assert tally.good > rounds and tally.uncertain > 0  # the check saw values, not only BAD
    assert tally.tracebacks == 0
    assert tally.accepted_corrupt == 0


# ----- the value mapping alone ------------------------------------------------------------------

_variants = st.one_of(
    st.floats().map(lambda v: (v, ua.VariantType.Double)),
    st.floats(width=32).map(lambda v: (v, ua.VariantType.Float)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: (v, ua.VariantType.Int64)),
    st.integers(0, 2**64 - 1).map(lambda v: (v, ua.VariantType.UInt64)),
    st.booleans().map(lambda v: (v, ua.VariantType.Boolean)),
    st.text(max_size=20).map(lambda v: (v, ua.VariantType.String)),
    st.binary(max_size=20).map(lambda v: (v, ua.VariantType.ByteString)),
    st.just((None, ua.VariantType.Null)),
    st.lists(st.floats(), max_size=5).map(lambda v: (v, ua.VariantType.Double)),
)


@settings(max_examples=int(os.environ.get("GRIDGATE_FUZZ_EXAMPLES", "500")), deadline=None)
@given(_variants, st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_sample_accepts_only_finite_scalar_numbers_with_a_non_bad_status(
    typed: tuple[Any, ua.VariantType], code: int | None
) -> None:
    value, vtype = typed
    variant = ua.Variant(value, vtype, is_array=isinstance(value, list))
    dv = ua.DataValue(variant)
    if code is not None:
        dv = ua.DataValue(variant, StatusCode=ua.StatusCode(ua.UInt32(code)))
    got, quality = sample(dv)
    finite = isinstance(value, bool | int | float) and math.isfinite(float(value))
    severity = 0 if code is None else code >> 30
    if severity >= 2 or not finite:
        assert quality is Quality.BAD and math.isnan(got)
    else:
        assert quality is (Quality.GOOD if severity == 0 else Quality.UNCERTAIN)
        assert got == float(value)
