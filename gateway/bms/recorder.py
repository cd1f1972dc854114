"""Decoded rack samples to rotating CSV files, in the format ``gridgate replay bms`` reads.

One row per recorded cycle (every ``every``-th): ``t`` (wall clock, s), ``current_a``
(+ discharge), ``string_v``, ``v_0001``... (V, empty when not read), ``temp_0001``... (the rack's
temperature sensors in string order, degC). A file is closed and the next one started when it
passes ``max_bytes``; only the newest ``files`` are kept. See docs/replay.md.

A recorder that cannot write (a full or read-only disk) logs once, drops rows, and tries a new
file a minute later: recording is for analysis and must never stop the rack's cycle.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from gateway.bms.config import RecordingSettings
from gateway.core.model import FloatArray, Quality, QualityArray

log = logging.getLogger(__name__)

_RETRY_S = 60.0
PREFIX = "bms-"


def header(n_cells: int, n_temps: int) -> str:
    cols = ["t", "current_a", "string_v"]
    cols += [f"v_{i + 1:04d}" for i in range(n_cells)]
    cols += [f"temp_{i + 1:04d}" for i in range(n_temps)]
    return ",".join(cols) + "\n"


def _fmt(values: FloatArray, quality: QualityArray, spec: str) -> list[str]:
    ok = (quality == Quality.GOOD) & np.isfinite(values)
    return [format(v, spec) if g else "" for v, g in zip(values.tolist(), ok.tolist(), strict=True)]


def _num(x: float, spec: str) -> str:
    return format(x, spec) if np.isfinite(x) else ""


class Recorder:
    def __init__(self, settings: RecordingSettings, n_cells: int, n_temps: int) -> None:
        self.settings = settings
        self._header = header(n_cells, n_temps)
        self._file: TextIO | None = None
        self._path: Path | None = None
        self._size = 0
        self._count = 0
        self._failed_at: float | None = None
        self.rows = 0
        self.dropped = 0

    @property
    def path(self) -> Path | None:
        return self._path

    def _open(self, ts: float) -> None:
        d = self.settings.dir
        d.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ts))
        path = d / f"{PREFIX}{stamp}-{int(ts * 1000) % 1000:03d}.csv"
        self._file = path.open("w", encoding="ascii", newline="")
        self._file.write(self._header)
        self._path, self._size = path, len(self._header)
        log.info("recording to %s", path)
        self._prune()

    def _prune(self) -> None:
        files = sorted(self.settings.dir.glob(f"{PREFIX}*.csv"))
        for old in files[: max(0, len(files) - self.settings.files)]:
            old.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.error("recording %s: cannot close: %s", self._path, exc)
            self._file = None

    def write(
        self,
        ts: float,
        current_a: float,
        string_v: float,
        cell_v: FloatArray,
        cell_q: QualityArray,
        temp_c: FloatArray,
        temp_q: QualityArray,
    ) -> None:
        self._count += 1
        if (self._count - 1) % self.settings.every:
            return
        if self._failed_at is not None and time.monotonic() - self._failed_at < _RETRY_S:
            self.dropped += 1
            return
        fields = [f"{ts:.3f}", _num(current_a, ".3f"), _num(string_v, ".2f")]
        fields += _fmt(cell_v, cell_q, ".4f")
        fields += _fmt(temp_c, temp_q, ".1f")
        row = ",".join(fields) + "\n"
        try:
            if self._file is None or self._size + len(row) > self.settings.max_bytes:
                self._close()
                self._open(ts)
            assert self._file is not None
            self._file.write(row)
        except OSError as exc:
            if self._failed_at is None:
                log.error("recording stopped, cannot write %s: %s", self.settings.dir, exc)
            self._failed_at = time.monotonic()
            self._close()
            self.dropped += 1
            return
        if self._failed_at is not None:
            log.info("recording again to %s", self._path)
            self._failed_at = None
        self._size += len(row)
        self.rows += 1

    def close(self) -> None:
        self._close()
