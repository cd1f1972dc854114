"""End-to-end delivery: spool -> forwarder -> real mosquitto -> a real QoS 1 subscriber.

The subscriber is always connected and subscribed before anything is published. Delivery is
checked by ``seq`` against what the producer committed (the independent reference): every row
arrives, first arrivals are in seq order, and duplicates stay within the in-flight window.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from gateway.core.backoff import Backoff
from gateway.core.errors import SpoolFullError
from gateway.core.supervisor import Supervisor
from gateway.spool.opening import SpoolDiskFullError
from gateway.spool.store import NewRow, Spool
from gateway.uplink.encode import JsonEncoder
from gateway.uplink.forwarder import Forwarder
from gateway.uplink.mqtt import MqttConnectError, MqttSession, MqttSettings
from tests.mosquitto import Address, Broker, Recorder, TopicIds

SITE, GW = "site1", "gw1"
INFLIGHT = 20


def _settings(b: Address, **kw: object) -> MqttSettings:
    return MqttSettings(host=b.host, port=b.port, keepalive=10, connect_timeout=3.0, **kw)  # type: ignore[arg-type]


def _produce(sp: Spool, n: int, start: int = 0, daemon: str = "grid") -> list[int]:
    rows = [
        NewRow.from_body(daemon, "summary", {"i": i, "v": i * 0.5}) for i in range(start, start + n)
    ]
    return sp.append_many(rows)


def _check_order_and_dups(got: list[int], produced: list[int], max_dups: int) -> int:
    assert set(produced) <= set(got)
    first: list[int] = []
    seen: set[int] = set()
    for s in got:
        if s not in seen:
            seen.add(s)
            first.append(s)
    assert first == sorted(first), "first arrivals out of seq order"
    dups = len(got) - len(first)
    assert dups <= max_dups, f"{dups} duplicates, bound {max_dups}"
    return dups


async def _start(fwd: Forwarder) -> asyncio.Task[None]:
    return asyncio.create_task(fwd.run())


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _until(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


# -- (a) normal delivery --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_delivers_in_order_and_deletes_on_puback(
    shared_broker: Address, recorder: Recorder, ids: TopicIds, tmp_path: Path, protocol: str
) -> None:
    site, gw = ids.site, ids.gateway
    sp = Spool(tmp_path / "spool.db")
    produced = _produce(sp, 150) + _produce(sp, 7, start=150, daemon="bms")
    events: list[str] = []
    fwd = Forwarder(
        sp,
        _settings(shared_broker, protocol=protocol, client_id=ids.client_id("fwd")),
        JsonEncoder(),
        site,
        gw,
        inflight=INFLIGHT,
        on_progress=events.append,
    )
    task = await _start(fwd)
    got = await asyncio.to_thread(recorder.wait_for, set(produced), 10)
    assert _check_order_and_dups(got, produced, max_dups=0) == 0
    # the spool commits the delete in a worker thread before the forwarder counts it: wait for both
    await _until(lambda: sp.depth() == 0 and fwd.published >= len(produced), 5)
    assert fwd.state == "connected" and fwd.published == len(produced)
    assert "published" in events and "connected" in events

    msgs = {m.seq: m for m in recorder.snapshot() if m.seq is not None}
    doc = json.loads(msgs[produced[3]].payload)
    assert doc == {
        "seq": produced[3],
        "ts": doc["ts"],
        "daemon": "grid",
        "kind": "summary",
        "site": site,
        "gateway": gw,
        "body": {"i": 3, "v": 1.5},
    }
    assert msgs[produced[3]].topic == f"gridgate/{site}/{gw}/grid/summary"
    assert msgs[produced[-1]].topic == f"gridgate/{site}/{gw}/bms/summary"

    await _stop(task)
    assert fwd.state == "stopped"

    def status() -> list[bytes]:
        return [m.payload for m in recorder.snapshot() if m.topic.endswith("/status")]

    await _until(lambda: len(status()) >= 2, 3)
    assert status() == [b"online", b"offline"]
    # the retained state upstream is "offline" after a graceful stop
    late = Recorder(shared_broker, f"gridgate/{site}/{gw}/status")
    await _until(late.snapshot, 3)
    assert late.snapshot()[0].payload == b"offline" and late.snapshot()[0].retain
    late.close()
    sp.close()


async def test_session_publish_futures_fail_on_loss_not_leak(broker: Broker) -> None:
    s = MqttSession(_settings(broker, client_id="leak"))
    await s.connect()
    await s.publish("gridgate/t/x", b"1")
    futs = [s.publish_nowait("gridgate/t/x", b"2") for _ in range(50)]
    broker.stop(signal.SIGKILL)  # the socket dies under the pending publishes
    lost = await asyncio.wait_for(s.wait_lost(), 5)
    assert "closed" in str(lost) or "failed" in str(lost)
    results = await asyncio.gather(*futs, return_exceptions=True)
    # each future either got its PUBACK before the kill or failed with the loss; none hangs
    assert all(r is None or isinstance(r, type(lost)) for r in results)
    assert not s.connected and not s._pending
    await s.disconnect()


# -- (b) broker outage while producing ---------------------------------------------------------


async def test_broker_outage_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.uplink")
    b = Broker(tmp_path, persistence=True)
    b.start()
    rec = Recorder(b, persistent=True)  # its session and subscription survive the restart
    sp = Spool(tmp_path / "spool.db", synchronous="normal")
    fwd = Forwarder(
        sp,
        _settings(b, client_id="fwd-b"),
        JsonEncoder(),
        SITE,
        GW,
        inflight=INFLIGHT,
        backoff=Backoff(0.05, 0.4, rng=random.Random(1)),
    )
    task = await _start(fwd)
    produced: list[int] = []
    try:
        for step in range(200):  # ~4 s of production, the broker is down for 1.5 s of it
            produced += await asyncio.to_thread(_produce, sp, 5, step * 5)
            if step == 50:
                await asyncio.to_thread(b.stop)
                await asyncio.sleep(0.1)
                assert fwd.state in ("backoff", "connecting")
                down_at = len(produced)
            if step == 120:
                await asyncio.to_thread(b.start)
            await asyncio.sleep(0.02)
        got = await asyncio.to_thread(rec.wait_for, set(produced), 15)
        assert down_at < len(produced)
        # forwarder re-sends at most its window; the broker may redeliver its own window
        # (max_inflight_messages, default 20) to the subscriber after the restart
        _check_order_and_dups(got, produced, max_dups=INFLIGHT + 20)
        await _until(lambda: sp.depth() == 0, 5)
    finally:
        await _stop(task)
        rec.close()
        b.stop()
        sp.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.uplink.forwarder"]
    lost = [m for m in lines if "retrying" in m]
    recovered = [m for m in lines if m.startswith("uplink: connected")]
    assert len(lost) == 1, lines  # once on loss ...
    assert len(recovered) == 2, lines  # ... once on the first connect and once on recovery


# -- (c) the uplink process killed -9 at random moments ----------------------------------------


def _spawn(b: Address, spool: Path, ids: TopicIds) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.uplink.forwarder",
            "--spool",
            str(spool),
            "--host",
            b.host,
            "--port",
            str(b.port),
            "--client-id",
            ids.client_id("fwd"),
            "--site",
            ids.site,
            "--gateway",
            ids.gateway,
            "--inflight",
            str(INFLIGHT),
            "--backoff-initial",
            "0.05",
            "--backoff-cap",
            "0.2",
            "--synchronous",
            "normal",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_uplink_process_sigkill_loses_nothing(
    shared_broker: Address, recorder: Recorder, ids: TopicIds, tmp_path: Path
) -> None:
    path = tmp_path / "spool.db"
    sp = Spool(path, synchronous="normal")
    produced: list[int] = []
    stop = threading.Event()

    def producer() -> None:
        i = 0
        while not stop.is_set():
            produced.extend(_produce(sp, 7, i))
            i += 7
            time.sleep(0.01)

    prod = threading.Thread(target=producer)
    prod.start()
    rng = random.Random(20240601)
    starts: list[float] = []
    kills = 0
    try:
        proc = _spawn(shared_broker, path, ids)
        starts.append(time.monotonic())
        for _ in range(22):
            time.sleep(rng.uniform(0.3, 0.9))
            proc.kill()
            proc.wait(5)
            assert proc.returncode == -signal.SIGKILL
            kills += 1
            time.sleep(0.05)
            proc = _spawn(shared_broker, path, ids)
            starts.append(time.monotonic())
        time.sleep(0.5)
    finally:
        stop.set()
        prod.join()
    try:
        got = recorder.wait_for(set(produced), 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    assert kills >= 20
    _check_order_and_dups(got, produced, max_dups=INFLIGHT * kills)
    # tighter: duplicates arriving after each restart are re-sends of the killed process's window
    arrivals = [m for m in recorder.snapshot() if m.seq is not None]
    seen: set[int] = set()
    per_run = [0] * len(starts)
    for m in arrivals:
        run = max(i for i, t in enumerate(starts) if t <= m.at)
        if m.seq in seen:
            per_run[run] += 1
        seen.add(m.seq)  # type: ignore[arg-type]
    assert max(per_run) <= INFLIGHT, per_run
    assert per_run[0] == 0
    assert sp.depth() == 0
    # the broker published the will for the killed sessions, and the last word is the graceful one
    status = [m.payload for m in recorder.snapshot() if m.topic.endswith("/status")]
    assert status.count(b"offline") >= 1 and status[-1] == b"offline"
    # a run killed before its CONNACK (slow start under load) never said "online"
    assert 1 <= status.count(b"online") <= kills + 1
    sp.close()


# -- (d) wrong credentials -----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_wrong_credentials_name_the_reason_and_keep_retrying(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    b = Broker(tmp_path, users={"gw": "right-pw"})
    b.start()
    try:
        s = MqttSession(_settings(b, protocol=protocol, username="gw", password="wrong-pw"))
        with pytest.raises(MqttConnectError) as err:
            await s.connect()
        assert err.value.reason in ("Not authorized", "Bad user name or password")
        assert err.value.reason_code in (0x86, 0x87, 5, 4)
        assert err.value.reason in str(err.value) and "wrong-pw" not in str(err.value)
        assert "wrong-pw" not in repr(s.settings)

        caplog.set_level(logging.DEBUG, logger="gateway.uplink")
        sp = Spool(tmp_path / "spool.db")
        seqs = _produce(sp, 3)
        events: list[str] = []
        fwd = Forwarder(
            sp,
            _settings(b, protocol=protocol, username="gw", password="wrong-pw"),
            JsonEncoder(),
            SITE,
            GW,
            backoff=Backoff(0.05, 0.2),
            on_progress=events.append,
        )
        task = await _start(fwd)
        await _until(lambda: fwd.failures >= 4, 5)
        assert not task.done() and fwd.state in ("backoff", "connecting")
        assert events.count("backoff") >= 4
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and err.value.reason in errors[0].getMessage()
        assert all("wrong-pw" not in r.getMessage() for r in caplog.records)
        assert sp.depth() == len(seqs)  # nothing deleted while refused
        await _stop(task)
        sp.close()
    finally:
        b.stop()


# -- (e) spool full under both policies --------------------------------------------------------


@pytest.mark.parametrize("policy", ["drop_oldest", "reject_new"])
async def test_spool_full_alarm_reaches_upstream(
    shared_broker: Address, recorder: Recorder, ids: TopicIds, tmp_path: Path, policy: str
) -> None:
    body_len = len(json.dumps({"i": 10}, separators=(",", ":")))
    sp = Spool(tmp_path / "spool.db", max_bytes=20 * body_len, policy=policy)  # type: ignore[arg-type]
    accepted: list[int] = []
    for start in range(10, 40, 5):  # 30 rows offered, room for 20, all payloads the same length
        try:
            rows = [NewRow.from_body("grid", "summary", {"i": i}) for i in range(start, start + 5)]
            accepted += sp.append_many(rows)
        except SpoolFullError as exc:
            assert policy == "reject_new" and "spool full" in str(exc)
    st = sp.stats()
    if policy == "drop_oldest":
        assert (st.dropped, st.rejected) == (10, 0)
        survivors = accepted[10:]
    else:
        assert (st.dropped, st.rejected) == (0, 10)
        survivors = accepted
    assert len(survivors) == 20 and st.alarm_active

    fwd = Forwarder(
        sp,
        _settings(shared_broker, client_id=ids.client_id("fwd")),
        JsonEncoder(),
        ids.site,
        ids.gateway,
    )
    task = await _start(fwd)
    try:
        await asyncio.to_thread(recorder.wait_for, set(survivors), 10)
        await _until(
            lambda: sum(m.topic.endswith("/spool/alarm") for m in recorder.snapshot()) >= 2, 5
        )
    finally:
        await _stop(task)
    data = [m.seq for m in recorder.snapshot() if m.topic.endswith("/grid/summary")]
    assert data == survivors  # the dropped/rejected ones never went out
    alarms = [
        json.loads(m.payload) for m in recorder.snapshot() if m.topic.endswith("/spool/alarm")
    ]
    assert [a["body"]["active"] for a in alarms] == [True, False]
    assert alarms[0]["body"]["alarm"] == "spool_full" and alarms[0]["body"]["policy"] == policy
    assert alarms[0]["daemon"] == "spool" and alarms[0]["kind"] == "alarm"
    sp.close()


def test_forwarder_cli_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.uplink.forwarder", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    assert "--spool" in out.stdout


# -- the JSON encoder ----------------------------------------------------------------------------


def test_json_encoder_is_compact_and_maps_nan_to_null() -> None:
    from gateway.spool.store import SpoolRow
    from gateway.uplink.encode import EncodeContext, EncodeError

    ctx = EncodeContext(SITE, GW)
    row = SpoolRow(7, 12.5, "grid", "summary", b'{"u": NaN, "p": [1, Infinity], "q": 2}')
    out = JsonEncoder().encode(row, ctx)
    assert b" " not in out
    assert json.loads(out) == {
        "seq": 7,
        "ts": 12.5,
        "daemon": "grid",
        "kind": "summary",
        "site": SITE,
        "gateway": GW,
        "body": {"u": None, "p": [1, None], "q": 2},
    }
    for bad in (b"[1, 2]", b"{not json", b"\xff\xfe"):
        with pytest.raises(EncodeError, match="spool row 7"):
            JsonEncoder().encode(SpoolRow(7, 0.0, "grid", "summary", bad), ctx)


async def test_undecodable_row_is_dropped_not_blocking(
    shared_broker: Address,
    recorder: Recorder,
    ids: TopicIds,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sp = Spool(tmp_path / "spool.db")
    good1 = _produce(sp, 2)
    bad = sp.append_many(
        [NewRow(0.0, "grid", "summary", b"[1, 2]"), NewRow(0.0, "a+b", "x", b"{}")]
    )
    good2 = _produce(sp, 2, start=2)
    fwd = Forwarder(
        sp,
        _settings(shared_broker, client_id=ids.client_id("fwd")),
        JsonEncoder(),
        ids.site,
        ids.gateway,
    )
    task = await _start(fwd)
    try:
        got = await asyncio.to_thread(recorder.wait_for, set(good1 + good2), 5)
        await _until(lambda: sp.depth() == 0, 5)
    finally:
        await _stop(task)
    assert got == good1 + good2 and fwd.undeliverable == 2
    dropped = [r.getMessage() for r in caplog.records if "dropping spool row" in r.getMessage()]
    assert [int(m.split()[4].rstrip(" ")) for m in dropped] == bad
    sp.close()


# -- (f) the spool cannot delete what the broker acknowledged (a full disk) ----------------------


class _AckFailsSpool(Spool):
    """A spool whose deletes fail for a while, as on a full disk (tmpfs test: test_disk_full)."""

    fail_acks = 0

    def ack(self, seqs: Iterable[int]) -> int:
        if self.fail_acks > 0:
            self.fail_acks -= 1
            raise SpoolDiskFullError(f"{self.path}: ack failed: database or disk is full")
        return super().ack(seqs)


async def test_ack_failures_never_crash_the_loop_or_republish(
    shared_broker: Address,
    recorder: Recorder,
    ids: TopicIds,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 11: ack() raising crashed the forward loop; each restart republished the oldest rows
    (6 copies of seqs 1-20, 16 tracebacks). Supervised as the runtime does it."""
    sp = _AckFailsSpool(tmp_path / "spool.db")
    produced = _produce(sp, 60)
    sp.fail_acks = 8
    fwd = Forwarder(
        sp,
        _settings(shared_broker, client_id=ids.client_id("fwd")),
        JsonEncoder(),
        ids.site,
        ids.gateway,
        inflight=INFLIGHT,
        poll_interval=0.05,
        backoff=Backoff(0.05, 0.2),
    )
    sup = Supervisor("test", backoff_initial=0.05, backoff_cap=0.2)
    sup.add("uplink.forward", fwd.run)
    with caplog.at_level(logging.INFO):
        sup.start()
        got = await asyncio.to_thread(recorder.wait_for, set(produced), 10)
        await _until(lambda: sp.depth() == 0, 10)
        more = _produce(sp, 5, start=60)  # and the loop carries on as usual afterwards
        got = await asyncio.to_thread(recorder.wait_for, set(produced + more), 10)
        await sup.stop()
    assert sup.restarts["uplink.forward"] == 0, "the forward loop crashed"
    assert _check_order_and_dups(got, produced + more, max_dups=0) == 0
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert caplog.text.count("cannot delete") == 1  # logged once per episode
    assert "spool usable again" in caplog.text
    sp.close()
