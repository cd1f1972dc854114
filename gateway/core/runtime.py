"""One process, one or more daemons: load and validate the config, build the daemons, supervise
their loops, answer signals (SIGTERM stops gracefully, SIGHUP reloads), tell systemd how it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from gateway.config import Config, load_config, load_or_report
from gateway.core.backoff import Backoff
from gateway.core.errors import ConfigError, SpoolError
from gateway.core.logs import setup_logging
from gateway.core.notify import Heartbeats, Notifier, watchdog_loop
from gateway.core.reload_request import ReloadOutcome, write_outcome
from gateway.core.status import write_status
from gateway.core.supervisor import LoopFactory, Supervisor
from gateway.spool.opening import SpoolBusyError, SpoolDiskFullError, is_disk_full
from gateway.spool.store import AsyncSpool, Spool

log = logging.getLogger(__name__)

EX_CONFIG = 78  # sysexits.h: configuration error; systemd will not restart-loop on it
EX_SOFTWARE = 70
EX_CANTCREAT = 73  # sysexits.h: cannot create a (state) file
# What the units set (UMask=0077), for a daemon started by hand too: the spool, its WAL, the
# status files and every directory made for them are the gridgate user's alone.
STATE_UMASK = 0o077
STATE_DIR_MODE = 0o700
# At a stop, what the daemons that drain the spool (the uplink) get to deliver the field daemons'
# last flush before their own loops stop: bounded, so a broker that is away cannot hang the stop
# (the units give TimeoutStopSec=30 for all of it).
DRAIN_GRACE = 5.0


class Daemon(Protocol):
    """What the runtime needs of a daemon; the daemons themselves are wiring only."""

    name: str

    def loops(self) -> Mapping[str, tuple[LoopFactory, float]]:
        """Loop name -> (factory, seconds within which the loop must show progress)."""
        ...

    def status(self) -> dict[str, Any]: ...

    async def close(self) -> None:
        """Flush what is buffered (the current window) into the spool; close devices."""
        ...


class Drains(Daemon, Protocol):
    """A daemon that empties the spool (the uplink): stopped after the others have flushed."""

    async def drain(self, grace: float) -> None:
        """Deliver what is spooled now, waiting at most ``grace`` seconds."""
        ...


def _drains(d: Daemon) -> TypeGuard[Drains]:
    return callable(getattr(d, "drain", None))


class DaemonContext:
    """What every daemon gets: its config, the spool, and a way to report progress."""

    def __init__(self, config: Config, spool: AsyncSpool, beats: Heartbeats) -> None:
        self.config = config
        self.spool = spool
        self.beats = beats


def build_daemon(name: str, ctx: DaemonContext) -> Daemon:
    # Imported by name so that an uplink-only process never loads pymodbus and the grid daemon
    # never loads paho: every megabyte counts on a gateway.
    module = importlib.import_module(ctx.config.definition(name).daemon)
    daemon: Daemon = module.build(ctx)
    return daemon


def open_spool(config: Config) -> Spool:
    config.spool.path.parent.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    spool = Spool(
        config.spool.path,
        max_bytes=config.spool.max_bytes,
        policy=config.spool.when_full,  # type: ignore[arg-type]
        synchronous=config.spool.synchronous,  # type: ignore[arg-type]
    )
    _tighten(config.spool.path)
    return spool


def _tighten(db: Path) -> None:
    """Make a spool left world-readable (by a start under umask 022 before the runtime set its
    own) 0600 again. Files only, and only our own: a directory may be shared (/tmp)."""
    for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            st = f.stat()
            if st.st_uid == os.getuid() and st.st_mode & 0o077:
                f.chmod(0o600)


class _StoppedWhileWaitingError(Exception):
    """SIGTERM while waiting for a usable spool: a clean stop, nothing was started."""


async def open_spool_when_usable(
    config: Config, stop: asyncio.Event, notify: Callable[[str], None] | None = None
) -> Spool | None:
    """Open the spool, waiting (logged once) while the disk is full or another process holds it.

    Exiting instead would make systemd give up after a few restarts, long before space returns;
    READY is sent only after this returns a spool, so it means "the spool is writable". Returns
    None if asked to stop while waiting. Other failures (permissions, a bad path) still raise.
    """
    backoff = Backoff(1.0, 30.0)
    waiting: str | None = None
    while not stop.is_set():
        try:
            spool = open_spool(config)
            spool.probe_writable()
        except (SpoolDiskFullError, SpoolBusyError, OSError) as exc:
            if isinstance(exc, OSError) and not is_disk_full(exc):
                raise
            if waiting is None:
                log.error("spool not writable, waiting (READY when it is): %s", exc)
            waiting = str(exc)
            delay = backoff.next()
            if notify is not None:  # systemd's start timeout must not kill a daemon that waits
                notify(f"EXTEND_TIMEOUT_USEC={int((delay + 30) * 1e6)}\nSTATUS=waiting: {exc}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            continue
        if waiting is not None:
            log.info("spool %s writable again, starting", config.spool.path)
        return spool
    return None


class Runtime:
    def __init__(self, config_path: Path, which: str, notifier: Notifier | None = None) -> None:
        self.config_path = config_path
        self.which = which
        self._only = None if which == "all" else which
        self.notifier = notifier or Notifier()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._reloads = 0  # attempts answered, numbered for gridgate reload
        self.beats = Heartbeats()

    async def _start(self, config: Config) -> _Running:
        spool = await open_spool_when_usable(config, self._stop, self.notifier.send)
        if spool is None:
            raise _StoppedWhileWaitingError
        ctx = DaemonContext(config, AsyncSpool(spool), self.beats)
        names = config.daemons() if self.which == "all" else [self.which]
        try:
            daemons = [build_daemon(n, ctx) for n in names]
        except BaseException:
            spool.close()  # a reload falls back to the previous config: leave nothing open
            raise
        # Two supervisors, so a stop can end the field loops first and the spool's drain last.
        sup, drain_sup = Supervisor("gridgate"), Supervisor("gridgate")
        for d in daemons:
            for loop_name, (factory, allowance) in d.loops().items():
                key = f"{d.name}.{loop_name}"
                self.beats.register(key, allowance)
                (drain_sup if _drains(d) else sup).add(key, factory)
        sup.start()
        drain_sup.start()
        status = asyncio.create_task(self._status_loop(config, daemons), name="status")
        running = _Running(config, spool, daemons, sup, drain_sup, status)
        await self._await_first_progress(timeout=30.0)
        self.notifier.ready(", ".join(d.name for d in daemons) + " running")
        log.info("running %s from %s", ", ".join(d.name for d in daemons), self.config_path)
        return running

    async def _shutdown(self, r: _Running) -> None:
        """Stop in the order the data flows: the field daemons stop and flush their partial
        windows into the spool; then the uplink gets DRAIN_GRACE seconds to deliver that flush
        before its own loop stops (saying "offline" once and disconnecting)."""
        r.status.cancel()
        await r.sup.stop()
        for d in r.daemons:
            if not _drains(d):
                await self._close(r, d)
        for d in r.daemons:
            if _drains(d):
                try:
                    await d.drain(DRAIN_GRACE)
                except Exception:
                    log.exception("%s: error while draining the spool", d.name)
        await r.drain_sup.stop()
        for d in r.daemons:
            if _drains(d):
                await self._close(r, d)
        r.spool.close()

    async def _close(self, r: _Running, d: Daemon) -> None:
        try:
            await d.close()
        except Exception:
            log.exception("%s: error while closing; buffered data may be incomplete", d.name)
        for loop_name in d.loops():
            self.beats.unregister(f"{d.name}.{loop_name}")
        with contextlib.suppress(OSError):
            write_status(r.config.gateway.runtime_dir, d.name, {"state": "stopped", **d.status()})

    async def _status_loop(self, config: Config, daemons: list[Daemon]) -> None:
        failing = False
        while True:
            parts = []
            for d in daemons:
                st = d.status()
                try:
                    write_status(config.gateway.runtime_dir, d.name, {"state": "running", **st})
                except OSError as exc:
                    # Status is for humans; a full or read-only runtime dir must not stop work.
                    if not failing:
                        log.error("cannot write status to %s: %s", config.gateway.runtime_dir, exc)
                    failing = True
                else:
                    failing = False
                parts.append(f"{d.name}: {st.get('summary', 'running')}")
            self.notifier.status("; ".join(parts))
            await asyncio.sleep(config.gateway.status_interval)

    async def _await_first_progress(self, timeout: float) -> None:
        # READY means the daemons did real work once (a poll completed, the uplink reached or
        # honestly waited on its broker), not merely that the process came up.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            if not self.beats.pending_first():
                return
            await asyncio.sleep(0.05)

    async def _next_event(self) -> str:
        stop = asyncio.create_task(self._stop.wait())
        reload = asyncio.create_task(self._reload.wait())
        await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        reload.cancel()
        if self._stop.is_set():
            return "stop"
        self._reload.clear()
        return "reload"

    def _try_reload(self) -> tuple[Config | None, str]:
        """The new config, or None and why it is refused."""
        try:
            new = load_config(self.config_path, only=self._only)
        except ConfigError as exc:
            return None, "; ".join(str(i) for i in exc.issues)
        if self.which != "all" and self.which not in new.daemons():
            return None, f"daemon {self.which} is not enabled"
        problem = _unusable_state(new)
        if problem is not None:
            return None, problem
        return new, ""

    def _answer(self, runtime_dir: Path, applied: bool, reason: str) -> None:
        """Tell ``gridgate reload`` (and so ``systemctl reload``) what became of the SIGHUP."""
        self._reloads += 1
        outcome = ReloadOutcome(os.getpid(), self._reloads, applied, reason)
        try:
            write_outcome(runtime_dir, self.which, outcome)
        except OSError as exc:  # the journal has the outcome; only the caller's answer is lost
            log.error("cannot write the reload outcome to %s: %s", runtime_dir, exc)

    async def _apply_reload(self, running: _Running) -> _Running:
        """Apply the config file again; whatever goes wrong, a config keeps running.

        Refused without stopping anything: a config that does not validate, or whose state
        directory cannot be made. Failing once the daemons are stopped (the spool cannot be
        opened, a daemon cannot be built): the previous config is started again. The reason is
        logged either way and written for ``gridgate reload``; only when the previous config
        cannot start again either does the error end the process, as it would at start.
        """
        self.notifier.reloading()
        new, refused = self._try_reload()
        if new is None:
            log.error("reload refused, keeping the running config: %s", refused)
            self._answer(running.config.gateway.runtime_dir, False, refused)
            self.notifier.ready("reload refused, running the previous config")
            return running
        log.info("reloading: the new config is valid, restarting the daemons")
        await self._shutdown(running)
        try:
            started = await self._start(new)
        except Exception as exc:  # any failure of the new config: the old one must come back
            expected = isinstance(exc, (ConfigError, SpoolError, OSError))
            log.error(
                "reload failed, starting the previous config again: %s",
                _reason(exc),
                exc_info=not expected,  # a bug in a daemon's build: its traceback, once
            )
            previous = await self._start(running.config)
            self._answer(new.gateway.runtime_dir, False, f"failed: {_reason(exc)}")
            return previous
        self._answer(new.gateway.runtime_dir, True, "")
        return started

    async def run(self, config: Config) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        wd = asyncio.create_task(watchdog_loop(self.notifier, self.beats), name="watchdog")
        running = await self._start(config)
        try:
            while True:
                if await self._next_event() == "stop":
                    self.notifier.stopping()
                    await self._shutdown(running)
                    log.info("stopped")
                    return 0
                running = await self._apply_reload(running)
        finally:
            wd.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await wd


def _unusable_state(config: Config) -> str | None:
    """Why the config's state directories cannot be used (made if missing), or None."""
    for d in (config.gateway.state_dir, config.spool.path.parent):
        try:
            if d.exists() and not d.is_dir():
                return f"state directory {d} is not a directory"
            d.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            return f"state directory {d}: {getattr(exc, 'strerror', None) or exc}"
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return "; ".join(str(i) for i in exc.issues)
    return str(exc)


@dataclass
class _Running:
    config: Config
    spool: Spool
    daemons: list[Daemon]
    sup: Supervisor  # the field daemons' loops
    drain_sup: Supervisor  # the loops that empty the spool, stopped last
    status: asyncio.Task[None]


def run(config_path: Path, which: str) -> int:
    os.umask(STATE_UMASK)  # before anything is created (sqlite makes its files 0644 & ~umask)
    config = load_or_report(config_path, only=None if which == "all" else which)
    if config is None:
        return EX_CONFIG
    if which != "all" and which not in config.daemons():
        print(f"{config_path}: {which}: daemon is not enabled in this config", file=sys.stderr)
        return EX_CONFIG
    setup_logging(config.gateway.log_level)
    try:
        return asyncio.run(Runtime(config_path, which).run(config))
    except _StoppedWhileWaitingError:
        return 0
    except ConfigError as exc:
        # Found only when a daemon is built (an electrically broken feeder model, say).
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EX_CONFIG
    except (SpoolError, OSError) as exc:
        # The state directory or the spool cannot be used: nothing can be made durable, so
        # refuse to run rather than poll into the void. systemd's journal gets the reason.
        log.critical("cannot start: %s", exc)
        return EX_CANTCREAT
