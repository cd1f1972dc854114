"""Plain numpy reference of the summariser and report-by-exception (the cross-check of stats.c).

Written from the definitions, not from the C code: the window is the whole stack of frames at once,
mean and variance are the two-pass nanmean/nanvar of the masked samples (no Welford), first/last
come from index searches. Tests and benchmarks only; never on the hot path.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.core.model import FloatArray, Quality, QualityArray
from gateway.native.stats import WindowSummary

BoolArray = npt.NDArray[np.bool_]

_NEVER_REPORTED = 255


def summarise(values2d: FloatArray, quality2d: QualityArray, ts1d: FloatArray) -> WindowSummary:
    """Aggregates of a window given as [frame, point] arrays and one timestamp per frame."""
    values = np.asarray(values2d, dtype=np.float64)
    n_frames, n_points = values.shape
    good = (np.asarray(quality2d) == Quality.GOOD) & np.isfinite(values)
    count = good.sum(axis=0, dtype=np.int64)
    bad = n_frames - count

    nan = np.full(n_points, np.nan)
    lo, hi, mean, var, last, first_ts, last_ts = (nan.copy() for _ in range(7))
    seen = count > 0  # only columns with a sample, so no nan-function sees an empty slice
    if np.any(seen):
        x = np.where(good, values, np.nan)[:, seen]
        g = good[:, seen]
        lo[seen] = np.nanmin(x, axis=0)
        hi[seen] = np.nanmax(x, axis=0)
        mean[seen] = np.nanmean(x, axis=0)
        var[seen] = np.nanvar(x, axis=0)  # ddof=0: population variance
        first = np.argmax(g, axis=0)
        final = n_frames - 1 - np.argmax(g[::-1], axis=0)
        cols = np.arange(g.shape[1])
        last[seen] = x[final, cols]
        ts = np.asarray(ts1d, dtype=np.float64)
        first_ts[seen] = ts[first]
        last_ts[seen] = ts[final]
    return WindowSummary(
        count=count,
        bad=bad,
        min=lo,
        max=hi,
        mean=mean,
        variance=var,
        last=last,
        first_ts=first_ts,
        last_ts=last_ts,
    )


def report_by_exception(
    values: FloatArray,
    quality: QualityArray,
    last_reported: FloatArray,
    last_quality: QualityArray,
    deadband: FloatArray,
) -> tuple[BoolArray, FloatArray, QualityArray]:
    """Which points to report, and the new (last_reported, last_quality); inputs are not changed."""
    v = np.asarray(values, dtype=np.float64)
    q = np.asarray(quality)
    v_nan = np.isnan(v)
    l_nan = np.isnan(last_reported)
    with np.errstate(invalid="ignore"):  # inf - inf: those entries are decided by v != last
        distance = np.abs(v - last_reported)
    moved = np.where(
        v_nan | l_nan,
        v_nan != l_nan,
        (v != last_reported) & (distance > deadband),
    )
    report = (q != last_quality) | ((q == Quality.GOOD) & moved)
    new_last = np.where(report, v, last_reported)
    new_quality = np.where(report, q, last_quality).astype(np.uint8)
    return report, new_last, new_quality


def never_reported(n_points: int) -> tuple[FloatArray, QualityArray]:
    """The (last_reported, last_quality) state of points never reported yet."""
    return np.full(n_points, np.nan), np.full(n_points, _NEVER_REPORTED, dtype=np.uint8)
