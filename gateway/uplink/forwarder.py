"""The uplink loop: spool rows to MQTT, in seq order, at least once, deleted only on PUBACK.

Ordering rule: within one connection rows are published in seq order with at most ``inflight``
unacknowledged; after any reconnect publishing starts again from the oldest row still in the spool,
so seq N+k is never sent on a new connection before every unacked row below it has been sent again.
Duplicates upstream are therefore limited to the in-flight window of the connection that died, and
upstream can drop them by ``seq``.

Producers commit with ``BEGIN IMMEDIATE`` (one writer at a time, seqs assigned inside the write
transaction), so rows become visible in seq order and reading with a ``seq > cursor`` cursor never
skips a row committed late.

Run standalone (tests, benches) with ``python -m gateway.uplink.forwarder --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

from gateway.core.backoff import Backoff
from gateway.core.errors import SpoolError
from gateway.spool.store import AsyncSpool, Spool, SpoolRow
from gateway.uplink.encode import EncodeContext, EncodeError, Encoder, JsonEncoder
from gateway.uplink.mqtt import (
    MqttConnectError,
    MqttError,
    MqttSession,
    MqttSettings,
    Protocol,
    Will,
)

log = logging.getLogger(__name__)

State = Literal["connecting", "connected", "backoff", "stopped"]
SessionFactory = Callable[[MqttSettings, Will], MqttSession]
ONLINE: Final = b"online"
OFFLINE: Final = b"offline"
_TOPIC_FORBIDDEN: Final = frozenset("/+#\0")


def _check_level(what: str, value: str) -> None:
    if not value or _TOPIC_FORBIDDEN & set(value):
        raise ValueError(f"{what} {value!r} cannot be an MQTT topic level (empty, '/', '+', '#')")


class Forwarder:
    """Drains the spool to the broker until cancelled.

    ``on_progress(event)`` is called with ``"published"`` after a batch was acknowledged and
    deleted, ``"idle"`` while connected with nothing to send, ``"backoff"`` while honestly waiting
    to retry the broker: feed the systemd watchdog from it, so a wedged loop stops feeding.
    """

    def __init__(
        self,
        spool: Spool | AsyncSpool,
        settings: MqttSettings,
        encoder: Encoder,
        site: str,
        gateway: str,
        *,
        inflight: int = 20,
        poll_interval: float = 0.2,
        drain_timeout: float = 2.0,
        backoff: Backoff | None = None,
        session_factory: SessionFactory = MqttSession,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        if inflight < 1:
            raise ValueError(f"inflight must be >= 1, got {inflight}")
        _check_level("site", site)
        _check_level("gateway", gateway)
        self._spool = spool if isinstance(spool, AsyncSpool) else AsyncSpool(spool)
        self._settings = settings
        self._encoder = encoder
        self._ctx = EncodeContext(site, gateway)
        self._inflight = inflight
        self._poll_interval = poll_interval
        self._drain_timeout = drain_timeout
        self._backoff = backoff if backoff is not None else Backoff(1.0, 60.0)
        self._factory = session_factory
        self._on_progress = on_progress
        self.status_topic = f"gridgate/{site}/{gateway}/status"
        self._state: State = "stopped"
        self._last_problem: str | None = None
        self._was_connected = False
        # Acknowledged by the broker but not yet deleted (the spool could not be written: a full
        # disk): never published again, deleted as soon as the spool takes writes again.
        self._unsaved: set[int] = set()
        self._spool_problem: str | None = None
        # What drain() waits for: the pump found nothing left to send (drained), or the
        # connection was lost (nothing more will be sent before the stop).
        self._wake = asyncio.Event()
        self._drained = False
        self.published = 0  # acknowledged by the broker and deleted from the spool
        self.undeliverable = 0  # rows that could not be encoded, logged and deleted
        self.connects = 0
        self.failures = 0

    @property
    def state(self) -> State:
        return self._state

    @property
    def last_error(self) -> str | None:
        return self._last_problem

    async def drain(self, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, until every row committed before this call is
        acknowledged and deleted; False at once when not connected (the broker is away: what
        is spooled waits for the next start) or when the time runs out."""
        if self._state != "connected":
            return False
        self._drained = False
        self._wake.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            return False
        return self._drained

    def topic(self, row: SpoolRow) -> str:
        return f"gridgate/{self._ctx.site}/{self._ctx.gateway}/{row.daemon}/{row.kind}"

    async def run(self) -> None:
        """Connect, drain, reconnect with backoff; returns only by cancellation (re-raised)."""
        will = Will(self.status_topic, OFFLINE, qos=1, retain=True)
        try:
            while True:
                self._state = "connecting"
                session = self._factory(self._settings, will)
                try:
                    await session.connect()
                    await session.publish(self.status_topic, ONLINE, qos=1, retain=True)
                except MqttError as exc:
                    await session.disconnect(timeout=0)
                    self._failed(exc)
                    await self._wait_backoff()
                    continue
                self._connected()
                try:
                    await self._pump(session)  # returns only by raising
                except MqttError as exc:
                    self._failed(exc)
                    await session.disconnect(timeout=0)
                await self._wait_backoff()
        finally:
            self._state = "stopped"

    # -- one connection ------------------------------------------------------------------------

    async def _pump(self, session: MqttSession) -> None:
        window: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        cursor = 0  # a new connection always starts from the oldest row still spooled
        lost = asyncio.ensure_future(session.wait_lost())
        try:
            while True:
                room = self._inflight - len(window)
                rows = await self._peek(cursor, room) if room > 0 else []
                for row in rows:
                    cursor = row.seq
                    if row.seq in self._unsaved:
                        continue  # the broker has it already
                    try:
                        payload = self._encoder.encode(row, self._ctx)
                        topic = self.topic(row)
                        _check_level("daemon", row.daemon)
                        _check_level("kind", row.kind)
                    except (EncodeError, ValueError) as exc:
                        await self._discard(row, exc)
                        continue
                    window.append((row.seq, session.publish_nowait(topic, payload)))
                if window:
                    either: set[asyncio.Future[Any]] = {window[0][1], lost}
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    await self._ack_done(window)
                    if lost.done():
                        raise lost.result()
                else:
                    if self._unsaved:
                        await self._save_acks([])
                    if not self._unsaved:
                        self._drained = True
                        self._wake.set()
                    self._progress("idle")
                    await asyncio.wait({lost}, timeout=self._poll_interval)
                    if lost.done():
                        raise lost.result()
        except asyncio.CancelledError:
            await self._stop_gracefully(session, window)
            raise
        finally:
            lost.cancel()

    async def _ack_done(self, window: collections.deque[tuple[int, asyncio.Future[None]]]) -> None:
        """Delete the acknowledged prefix of the window; raise if its head failed."""
        done: list[int] = []
        failure: BaseException | None = None
        while window and window[0][1].done():
            failure = window[0][1].exception()
            if failure is not None:
                break
            done.append(window.popleft()[0])
        if done:
            await self._save_acks(done)
            self.published += len(done)
            self._progress("published")
        if failure is not None:
            raise failure

    async def _save_acks(self, seqs: list[int]) -> None:
        """Delete acknowledged rows; if the spool cannot be written, remember them and go on.

        A failed delete must neither stop the loop (a restart would publish the same rows again)
        nor lose track of what the broker has: those rows are skipped until deleted.
        """
        todo = sorted(self._unsaved.union(seqs))
        try:
            await self._spool.ack(todo)
        except SpoolError as exc:
            self._unsaved.update(seqs)
            self._spool_failed(f"cannot delete {len(todo)} acknowledged row(s), will retry: {exc}")
            return
        self._unsaved.clear()
        self._spool_ok()

    async def _peek(self, cursor: int, room: int) -> list[SpoolRow]:
        try:
            rows = await self._spool.peek(cursor, room)
        except SpoolError as exc:
            self._spool_failed(f"cannot read the spool, will retry: {exc}")
            return []
        return rows

    def _spool_failed(self, problem: str) -> None:
        if self._spool_problem is None:  # once per episode
            log.error("uplink: %s", problem)
        self._spool_problem = problem

    def _spool_ok(self) -> None:
        if self._spool_problem is not None:
            log.info("uplink: spool usable again")
        self._spool_problem = None

    async def _discard(self, row: SpoolRow, exc: Exception) -> None:
        # A row that can never be encoded would block the queue forever; it is logged in full
        # (it is data, not a secret) and deleted.
        log.error("uplink: dropping spool row %d (%s/%s): %s", row.seq, row.daemon, row.kind, exc)
        await self._save_acks([row.seq])
        self.undeliverable += 1

    async def _stop_gracefully(
        self, session: MqttSession, window: collections.deque[tuple[int, asyncio.Future[None]]]
    ) -> None:
        """On cancel: take no new rows, wait briefly for in-flight acks, say offline, disconnect.

        "offline" is said once: over MQTT 5 the DISCONNECT asks the broker to publish the will
        (the retained "offline"), so a broker shutting down at the same moment, which publishes
        the will of every client still connected, cannot make it twice; MQTT 3.1.1 has no such
        DISCONNECT, so there it is published, then the will is dropped by a plain DISCONNECT.
        """
        try:
            pending = {fut for _seq, fut in window if not fut.done()}
            if pending:
                await asyncio.wait(pending, timeout=self._drain_timeout)
            while window and window[0][1].done() and window[0][1].exception() is None:
                await self._ack_done(window)
            v5 = self._settings.protocol == "5"
            if session.connected and not v5:
                offline = session.publish_nowait(self.status_topic, OFFLINE, qos=1, retain=True)
                await asyncio.wait({offline}, timeout=self._drain_timeout)
            await session.disconnect(timeout=self._drain_timeout, publish_will=v5)
            log.info("uplink: stopped, %d rows left in flight for the next start", len(window))
        except MqttError as exc:
            log.warning("uplink: stopping without a clean disconnect: %s", exc)
            await session.disconnect(timeout=0)

    # -- state changes, logged once each ---------------------------------------------------------

    def _connected(self) -> None:
        self.connects += 1
        self._state = "connected"
        if self._last_problem is not None or not self._was_connected:
            log.info(
                "uplink: connected to %s as %r after %d attempt(s)",
                self._settings.where,
                self._settings.client_id,
                self._backoff.attempts + 1,
            )
        self._backoff.reset()
        self._last_problem = None
        self._was_connected = True
        self._progress("connected")

    def _failed(self, exc: MqttError) -> None:
        self.failures += 1
        self._wake.set()  # a drain waiting for this connection waits no more
        problem = str(exc)
        refused = isinstance(exc, MqttConnectError)
        if self._last_problem is None:  # first failure of this outage
            log.log(
                logging.ERROR if refused else logging.WARNING,
                "uplink: %s; retrying with backoff",
                problem,
            )
        elif refused and problem != self._last_problem:
            # a refusal needs a technician (credentials, ACL) even in an outage that began otherwise
            log.error("uplink: %s; retrying with backoff", problem)
        else:
            log.debug("uplink: still failing: %s", problem)
        self._last_problem = problem

    async def _wait_backoff(self) -> None:
        self._state = "backoff"
        delay = self._backoff.next()
        self._progress("backoff")
        await asyncio.sleep(delay)

    def _progress(self, event: str) -> None:
        if self._on_progress is not None:
            self._on_progress(event)


# -- standalone runner ---------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gateway.uplink.forwarder", description=__doc__)
    p.add_argument("--spool", required=True, help="spool file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--protocol", choices=["3.1.1", "5"], default="3.1.1")
    p.add_argument("--client-id", default="")
    p.add_argument("--keepalive", type=int, default=30)
    p.add_argument("--username")
    p.add_argument("--ca-file")
    p.add_argument("--site", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--inflight", type=int, default=20)
    p.add_argument("--backoff-initial", type=float, default=1.0)
    p.add_argument("--backoff-cap", type=float, default=60.0)
    p.add_argument("--synchronous", choices=["full", "normal"], default="full")
    return p.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    protocol: Protocol = args.protocol
    settings = MqttSettings(
        host=args.host,
        port=args.port,
        protocol=protocol,
        client_id=args.client_id,
        keepalive=args.keepalive,
        username=args.username,
        # never on the command line, where every user can read it in /proc
        password=os.environ.get("GRIDGATE_MQTT_PASSWORD"),
        ca_file=args.ca_file,
    )
    spool = Spool(args.spool, synchronous=args.synchronous)
    fwd = Forwarder(
        spool,
        settings,
        JsonEncoder(),
        args.site,
        args.gateway,
        inflight=args.inflight,
        backoff=Backoff(args.backoff_initial, args.backoff_cap),
    )
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await fwd.run()
    finally:
        spool.close()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_main(_parse(argv)))
    except asyncio.CancelledError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
