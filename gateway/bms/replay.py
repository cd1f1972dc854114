"""``gridgate replay bms``: the rack's estimator (the daemon's own code path) over a recording.

Input: the CSV format of docs/replay.md (what :mod:`gateway.bms.recorder` writes). Output: one
row of string statistics per step and the final per-cell SOC. This is how an engineer tries a new
parameter set on field data before it goes to the rack.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from gateway.bms.config import BmsConfig
from gateway.bms.layout import StringLayout, cell_id
from gateway.bms.monitor import StringMonitor
from gateway.core.errors import GatewayError
from gateway.core.model import FloatArray, Quality, QualityArray
from gateway.native.cells import StringSummary

EX_DATAERR = 65  # sysexits.h: the input data was incorrect


class ReplayError(GatewayError):
    """The recording cannot be replayed; the message names the file and line."""


@dataclass(frozen=True)
class Reading:
    t: float
    current_a: float
    cell_v: FloatArray
    cell_q: QualityArray
    temp_c: FloatArray  # per sensor or per cell, as the recording has them
    temp_q: QualityArray


@dataclass(frozen=True)
class ReplayStep:
    t: float
    current_a: float
    soc: FloatArray  # per cell, a copy
    summary: StringSummary
    raised: int  # alarms raised this step
    cleared: int


def _numbered(header: list[str], prefix: str) -> list[int]:
    cols = [(i, name) for i, name in enumerate(header) if name.startswith(prefix)]
    expect = [f"{prefix}{k + 1:04d}" for k in range(len(cols))]
    if [name for _i, name in cols] != expect:
        raise ValueError(f"{prefix}NNNN columns must run {prefix}0001, {prefix}0002 ... in order")
    return [i for i, _name in cols]


def _values(row: list[str], idx: list[int]) -> tuple[FloatArray, QualityArray]:
    raw = [row[i].strip() for i in idx]
    v = np.array([float(x) if x else math.nan for x in raw], dtype=np.float64)
    q = np.where(np.isfinite(v), Quality.GOOD, Quality.BAD).astype(np.uint8)
    return v, q


def read_recording(path: Path, n_cells: int, temps_allowed: tuple[int, ...]) -> Iterator[Reading]:
    """The rows of ``path``; ReplayError (file:line: reason) at the first bad one."""
    try:
        f = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot open: {exc.strerror}") from exc
    with f:
        reader = csv.reader(f)
        try:
            head = next(reader)
        except StopIteration:
            raise ReplayError(f"{path}:1: empty file, expected a header") from None
        head = [h.strip() for h in head]
        try:
            t_col, i_col = head.index("t"), head.index("current_a")
            v_idx = _numbered(head, "v_")
            t_idx = _numbered(head, "temp_")
        except ValueError as exc:
            reason = str(exc) if "columns" in str(exc) else "the header needs t and current_a"
            raise ReplayError(f"{path}:1: {reason}") from None
        if len(v_idx) != n_cells:
            raise ReplayError(
                f"{path}:1: {len(v_idx)} cell voltage column(s), the config's rack has {n_cells}"
            )
        if t_idx and len(t_idx) not in temps_allowed:
            allowed = " or ".join(str(n) for n in sorted(set(temps_allowed)))
            raise ReplayError(
                f"{path}:1: {len(t_idx)} temperature column(s), expected {allowed} "
                "(one per sensor of the configured rack, or one per cell)"
            )
        last_t = -math.inf
        for row in reader:
            line = reader.line_num
            if not row or not "".join(row).strip():
                continue
            if len(row) != len(head):
                raise ReplayError(f"{path}:{line}: {len(row)} fields, the header has {len(head)}")
            try:
                t = float(row[t_col])
                cur = float(row[i_col]) if row[i_col].strip() else math.nan
                v, vq = _values(row, v_idx)
                tc, tq = _values(row, t_idx)
            except ValueError as exc:
                raise ReplayError(f"{path}:{line}: not a number: {exc}") from None
            if not t > last_t:
                raise ReplayError(f"{path}:{line}: t = {t} does not increase (previous {last_t})")
            last_t = t
            yield Reading(t, cur, v, vq, tc, tq)


def replay(recording: Path, cfg: BmsConfig, *, soc0: float | None = None) -> Iterator[ReplayStep]:
    """Run the estimator over ``recording``: one :class:`ReplayStep` per row after the first.

    The first row only starts the clock (and the SOC from OCV unless ``soc0`` is given); each
    later row is one kernel step of dt = its t minus the previous t.
    """
    layout = StringLayout(cfg.rack)
    monitor = StringMonitor(cfg, layout, soc0)
    temps_allowed = (layout.n_temps, layout.n_cells) if layout.n_temps else (layout.n_cells,)
    prev: float | None = None
    for r in read_recording(recording, layout.n_cells, temps_allowed):
        if prev is None:
            prev = r.t
            continue
        dt, prev = r.t - prev, r.t
        raised0, cleared0 = monitor.raised, monitor.cleared
        if r.temp_c.size == layout.n_temps:
            monitor.step(r.t, dt, r.current_a, r.cell_v, r.cell_q, r.temp_c, r.temp_q)
        else:  # one temperature per cell (or none): no sensor mapping
            tc = r.temp_c if r.temp_c.size else np.full(layout.n_cells, np.nan)
            tq = r.temp_q if r.temp_q.size else np.full(layout.n_cells, Quality.BAD, np.uint8)
            monitor.step_cells(r.t, dt, r.current_a, r.cell_v, r.cell_q, tc, tq)
        yield ReplayStep(
            r.t,
            r.current_a,
            np.array(monitor.estimator.soc),
            monitor.summary(),
            monitor.raised - raised0,
            monitor.cleared - cleared0,
        )


STEP_COLUMNS = (
    "t",
    "current_a",
    "soc_min",
    "soc_min_cell",
    "soc_mean",
    "soc_max",
    "soc_max_cell",
    "v_min",
    "v_min_cell",
    "v_max",
    "v_max_cell",
    "v_spread",
    "t_min",
    "t_max",
    "t_max_cell",
    "n_faulted",
    "n_bleeding",
    "alarms_raised",
    "alarms_cleared",
)


def _f(x: float, digits: int) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else ""


def _c(i: int) -> str:
    return cell_id(i) if i >= 0 else ""


def step_row(s: ReplayStep) -> list[str]:
    m = s.summary
    return [
        f"{s.t:.3f}",
        _f(s.current_a, 3),
        _f(m.soc_min, 5),
        _c(m.soc_min_idx),
        _f(m.soc_mean, 5),
        _f(m.soc_max, 5),
        _c(m.soc_max_idx),
        _f(m.v_min, 4),
        _c(m.v_min_idx),
        _f(m.v_max, 4),
        _c(m.v_max_idx),
        _f(m.v_spread, 4),
        _f(m.t_min, 1),
        _f(m.t_max, 1),
        _c(m.t_max_idx),
        str(m.n_faulted),
        str(m.n_bleeding),
        str(s.raised),
        str(s.cleared),
    ]


def final_path(out: Path) -> Path:
    """Where the final per-cell SOC goes beside ``OUT.csv``: ``OUT.final.csv``."""
    return out.with_suffix(".final.csv")


def _write_final(f: TextIO, soc: FloatArray) -> None:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["cell", "soc"])
    for i, x in enumerate(soc.tolist()):
        w.writerow([cell_id(i), _f(x, 5)])


def run_replay(recording: Path, cfg: BmsConfig, out: Path | None, soc0: float | None = None) -> int:
    """The CLI: per-step statistics to ``out`` (if given), final SOC beside it or to stdout."""
    steps = 0
    last: ReplayStep | None = None
    raised = 0
    try:
        if out is not None:
            with out.open("w", newline="", encoding="ascii") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(STEP_COLUMNS)
                for last in replay(recording, cfg, soc0=soc0):
                    w.writerow(step_row(last))
                    steps += 1
                    raised += last.raised
        else:
            for last in replay(recording, cfg, soc0=soc0):
                steps += 1
                raised += last.raised
    except ReplayError as exc:
        print(exc, file=sys.stderr)
        return EX_DATAERR
    if last is None:
        print(f"{recording}: fewer than two rows, nothing to replay", file=sys.stderr)
        return EX_DATAERR
    m = last.summary
    print(
        f"{steps} step(s) to t = {last.t:.1f} s; SOC min {m.soc_min:.4f} ({_c(m.soc_min_idx)}) "
        f"mean {m.soc_mean:.4f} max {m.soc_max:.4f} ({_c(m.soc_max_idx)}); "
        f"{m.n_faulted} cell(s) faulted; {raised} alarm(s) raised"
    )
    if out is not None:
        with final_path(out).open("w", newline="", encoding="ascii") as f:
            _write_final(f, last.soc)
        print(f"per-step statistics: {out}; final SOC per cell: {final_path(out)}")
    else:
        _write_final(sys.stdout, last.soc)
    return 0
