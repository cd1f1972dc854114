"""Per-device health: state, failure count, last success, and when the device may be polled again.

The journal gets one line when a device starts failing and one when it recovers, never one per
poll: a meter that is down for a weekend must not fill the disk of a gateway.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from enum import Enum

from gateway.core.backoff import Backoff

_log = logging.getLogger(__name__)

DEFAULT_BACKOFF_CAP = 30.0
_SHOWN = 5  # rejected points named in one log line


class DeviceState(Enum):
    UNKNOWN = "unknown"  # not read yet
    OK = "ok"
    FAILED = "failed"


class Health:
    """Tracks one device's health and its backoff.

    Only failures where the device did not answer at all (timeout, refused, garbled link) back it
    off: a device that answers with an exception response is alive and keeps its schedule.
    The backoff counts from the start of the failed attempt, so the first failure never costs
    more than one poll interval.
    """

    def __init__(
        self,
        device: str,
        poll_interval: float,
        *,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        rng: random.Random | None = None,
        logger: logging.Logger = _log,
    ) -> None:
        self.device = device
        self.state = DeviceState.UNKNOWN
        self.consecutive_failures = 0
        self.last_success_ts: float | None = None  # wall clock, for `gridgate status`
        self.last_cause: str | None = None
        self._backoff = Backoff(poll_interval, max(backoff_cap, poll_interval), rng=rng)
        self._not_before = float("-inf")  # monotonic
        self._log = logger

    def due(self, now: float) -> bool:
        """True when the device may be polled at monotonic time ``now``."""
        return now >= self._not_before

    @property
    def not_before(self) -> float:
        """Monotonic time before which the device is not polled (``-inf`` when not backed off)."""
        return self._not_before

    def record_success(self, ts: float) -> None:
        if self.state is DeviceState.FAILED:
            self._log.info(
                "modbus device %s: recovered after %d failed polls",
                self.device,
                self.consecutive_failures,
            )
        self.state = DeviceState.OK
        self.consecutive_failures = 0
        self.last_success_ts = ts
        self.last_cause = None
        self._backoff.reset()
        self._not_before = float("-inf")

    def record_failure(self, where: str, cause: str, started: float, *, unreachable: bool) -> None:
        """Note a failed poll begun at monotonic ``started``; ``where`` names the address."""
        if self.state is not DeviceState.FAILED:
            self._log.warning("modbus device %s: failed at %s: %s", self.device, where, cause)
        self.state = DeviceState.FAILED
        self.consecutive_failures += 1
        self.last_cause = f"{where}: {cause}"
        if unreachable:
            self._not_before = started + self._backoff.next()
        else:
            self._backoff.reset()
            self._not_before = float("-inf")


class ValueChecks:
    """The values a device sent but that came out BAD (not a number, implausible), per device.

    One line when an episode starts (naming the points and why), one when a point joins it, one
    when every value is plausible again; never one per poll. ``rejected`` is the last poll's.
    """

    def __init__(self, device: str, *, logger: logging.Logger = _log) -> None:
        self.device = device
        self.rejected: dict[str, str] = {}
        self._episode: set[str] = set()
        self._log = logger

    def record(self, rejected: Mapping[str, str]) -> None:
        """Note a fully answered poll's rejected values (point name -> reason)."""
        self.rejected = dict(rejected)
        new = sorted(rejected.keys() - self._episode)
        if new:
            shown = "; ".join(f"{name}: {rejected[name]}" for name in new[:_SHOWN])
            more = f"; and {len(new) - _SHOWN} more" if len(new) > _SHOWN else ""
            self._log.warning(
                "modbus device %s: %d value(s) BAD: %s%s", self.device, len(new), shown, more
            )
            self._episode.update(new)
        elif not rejected and self._episode:
            self._log.info(
                "modbus device %s: values plausible again (%d point(s) were BAD)",
                self.device,
                len(self._episode),
            )
            self._episode.clear()
