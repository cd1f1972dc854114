"""The maintenance counters on disk: they must survive restarts and power cuts.

Operating hours, starts and trips are what an inspection is planned on, and a PLC rarely keeps
them, so they are saved every ``save_every_s`` (and at shutdown) as a JSON file replaced
atomically: a power cut leaves the old or the new file, never half of one. A file that cannot be
read is kept aside as evidence and counting resumes from the configured start values rather than
the plant going unmonitored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

from gateway.plant.maintenance import Counters
from gateway.plant.maintenance_config import CounterSettings

log = logging.getLogger(__name__)


class CounterStore:
    def __init__(self, path: Path, save_every_s: float) -> None:
        self.path = path
        self.saves = 0
        self._every = save_every_s
        self._saved_at = time.monotonic()

    def load(self) -> Counters | None:
        """The saved counters, or None when there is no usable file."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return Counters.from_dict(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            aside = self.path.with_suffix(self.path.suffix + ".corrupt")
            with contextlib.suppress(OSError):
                self.path.replace(aside)
            log.error("plant: counter file %s unusable (%s), moved to %s", self.path, exc, aside)
            return None

    def load_or_start(self, device: str, settings: CounterSettings) -> Counters:
        """The saved counters, else the configured start values (a machine with history)."""
        counters = self.load()
        if counters is None:
            s = settings
            return Counters(s.initial_hours, s.initial_starts, s.initial_trips)
        log.info(
            "%s: counters from %s: %.2f h, %d starts, %d trips",
            device,
            self.path,
            counters.operating_hours,
            counters.starts,
            counters.trips,
        )
        return counters

    def save(self, counters: Counters) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(counters.to_dict(), f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)  # atomic rename (os.replace)
        # The rename is durable only once the directory entry is on disk too.
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.saves += 1

    def checkpoint(self, counters: Counters) -> None:
        """Save now; a failed save is logged and retried at the next due time, never raised
        into the scoring loop (the counts stay in memory meanwhile)."""
        self._saved_at = time.monotonic()
        try:
            self.save(counters)
        except OSError as exc:
            log.error("plant: cannot save counters to %s: %s", self.path, exc)

    def checkpoint_if_due(self, counters: Counters) -> None:
        if time.monotonic() - self._saved_at >= self._every:
            self.checkpoint(counters)
