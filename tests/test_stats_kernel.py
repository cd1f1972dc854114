"""The C summariser (native/stats.c) against its numpy reference, its edges and its error paths."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway.core.errors import NativeError
from gateway.core.model import Quality
from gateway.native import ffi as _native
from gateway.native import stats_ref
from gateway.native.ffi import check, check_version, ffi, lib, ptr
from gateway.native.stats import STAT_DTYPE, ReportByException, WindowStats, WindowSummary

REPO = Path(__file__).resolve().parent.parent
RTOL = 1e-12
# Below ~1e-290 squares underflow and both methods lose digits to the subnormal range.
UNDERFLOW = 1e-300
FLOAT_FIELDS = ("min", "max", "mean", "variance", "last", "first_ts", "last_ts")
EXACT_FIELDS = ("min", "max", "last", "first_ts", "last_ts")

# Arrays of up to 50 x 50 per example: enough examples to hit NaN/inf/BAD mixes, still seconds.
PROPERTY = settings(max_examples=100, deadline=None)


# ---------------------------------------------------------------- comparison with the reference


def _good_samples(values: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Good samples as a [frame, point] array with NaN elsewhere."""
    good = (quality == Quality.GOOD) & np.isfinite(values)
    return np.where(good, values, np.nan)


def assert_matches_reference(got: WindowSummary, values: np.ndarray, quality: np.ndarray, ts):
    ref = stats_ref.summarise(values, quality, ts)
    np.testing.assert_array_equal(got.count, ref.count)
    np.testing.assert_array_equal(got.bad, ref.bad)
    for name in EXACT_FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)
    assert np.array_equal(np.isnan(got.mean), ref.count == 0)
    assert np.array_equal(np.isnan(got.variance), ref.count == 0)
    seen = ref.count > 0
    if not np.any(seen):
        return
    x = _good_samples(values, quality)[:, seen]
    # Welford and two-pass sums round differently; their difference is bounded by the data's
    # own scale (the conditioning of the problem), so the tolerance is relative to that scale.
    scale = np.nanmax(np.abs(x), axis=0)
    spread = np.nanmax(np.abs(x - ref.mean[seen]), axis=0)
    mean_err = np.abs(got.mean[seen] - ref.mean[seen])
    assert np.all(mean_err <= RTOL * scale + UNDERFLOW), (mean_err, scale)
    var_ref = ref.variance[seen]
    var_err = np.abs(got.variance[seen] - var_ref)
    var_tol = RTOL * (var_ref + scale * spread) + UNDERFLOW
    assert np.all(var_err <= var_tol), (var_err, var_tol)
    assert np.all(got.variance[seen] >= 0.0)


def summarise_c(values: np.ndarray, quality: np.ndarray, ts: np.ndarray) -> WindowSummary:
    w = WindowStats(values.shape[1])
    w.add_frames(values, quality, ts)
    return w.snapshot()


# ---------------------------------------------------------------- strategies

SPECIALS = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0])
MAGNITUDES = st.builds(
    lambda sign, mant, exp: sign * mant * 10.0**exp,
    st.sampled_from([-1.0, 1.0]),
    st.floats(1.0, 10.0),
    st.integers(-150, 149),
)
VALUES = st.one_of(
    SPECIALS,
    MAGNITUDES,
    st.floats(-1e150, 1e150, allow_subnormal=False),
)
QUALITIES = st.sampled_from([Quality.GOOD, Quality.GOOD, Quality.UNCERTAIN, Quality.BAD])


@st.composite
def windows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A [frame, point] window of nasty values (hypothesis chooses elements)."""
    shape = (draw(st.integers(0, 50)), draw(st.integers(0, 50)))
    values = draw(hnp.arrays(np.float64, shape, elements=VALUES, fill=VALUES))
    quality = draw(
        hnp.arrays(np.uint8, shape, elements=QUALITIES.map(int), fill=QUALITIES.map(int))
    )
    ts = 1.7e9 + np.cumsum(draw(hnp.arrays(np.float64, shape[0], elements=st.floats(0, 60))))
    return values, quality, ts


@st.composite
def dense_windows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dense random window: per-point offset and spread over 300 decades, NaN/inf/BAD mixed in."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_frames, n_points = draw(st.integers(0, 50)), draw(st.integers(0, 50))
    offset = 10.0 ** rng.uniform(-150, 150, n_points) * rng.choice([-1, 0, 1], n_points)
    spread = 10.0 ** rng.uniform(-150, 150, n_points)
    values = offset + spread * rng.standard_normal((n_frames, n_points))
    p_bad = draw(st.floats(0, 1))
    quality = np.where(rng.random(values.shape) < p_bad, rng.integers(1, 3, values.shape), 0)
    for special in (np.nan, np.inf, -np.inf):
        values[rng.random(values.shape) < draw(st.floats(0, 0.3))] = special
    ts = 1.7e9 + np.arange(n_frames, dtype=np.float64)
    return values, quality.astype(np.uint8), ts


# ---------------------------------------------------------------- contracts of the module


def test_struct_layout_matches_stat_dtype() -> None:
    assert STAT_DTYPE.itemsize == ffi.sizeof("gg_stat_t") == 72
    for name in STAT_DTYPE.names:
        assert STAT_DTYPE.fields[name][1] == ffi.offsetof("gg_stat_t", name), name


def test_assert_layout_refuses_a_drifted_dtype() -> None:
    names = list(STAT_DTYPE.names)
    wrong_kind = np.dtype([(n, np.float64) for n in names])  # count as a double
    swapped = np.dtype([(n, STAT_DTYPE.fields[n][0]) for n in [names[1], names[0], *names[2:]]])
    short = np.dtype([(n, STAT_DTYPE.fields[n][0]) for n in names[:-1]])
    for dtype in (wrong_kind, swapped, short, np.dtype(np.float64)):
        with pytest.raises(NativeError, match="gg_stat_t"):
            _native.assert_layout("gg_stat_t", dtype)


def test_version_of_compiled_module_is_the_expected_one() -> None:
    assert lib.gg_native_version() == _native.EXPECTED_NATIVE_VERSION
    check_version(_native.EXPECTED_NATIVE_VERSION)
    with pytest.raises(NativeError, match=r"version 7 .* expect 1"):
        check_version(7, 1)


def _normalised_c(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return " ".join(text.split())


def test_cdef_is_the_stats_section_of_the_public_header() -> None:
    cdef = _normalised_c((REPO / "native/cdef/stats.h").read_text())
    header = _normalised_c((REPO / "native/gridgate.h").read_text())
    assert cdef in header


def test_check_maps_status_codes() -> None:
    assert check(0, "x") == 0
    assert check(5, "x") == 5
    with pytest.raises(NativeError, match=r"gg_thing failed: GG_EINVAL \(-1\)"):
        check(lib.GG_EINVAL, "gg_thing")
    with pytest.raises(NativeError, match="unknown status"):
        check(-99, "gg_thing")


def test_ptr_checks_dtype_contiguity_and_writability() -> None:
    with pytest.raises(NativeError, match="dtype float64"):
        ptr("double", np.zeros(3, dtype=np.float32))
    with pytest.raises(NativeError, match="no numpy dtype"):
        ptr("gg_stat_t", np.zeros(3, dtype=STAT_DTYPE))
    strided = np.arange(6.0)[::2]
    with pytest.raises(NativeError, match="contiguous"):
        ptr("double", strided, writable=True)
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    with pytest.raises(NativeError, match="writeable"):
        ptr("double", frozen, writable=True)
    # A read-only input that is not contiguous is copied, and C sees the logical elements.
    out = np.empty(3)
    st_arr = np.zeros(3, dtype=STAT_DTYPE)
    st_ptr = ptr("gg_stat_t", st_arr, dtype=STAT_DTYPE, writable=True)
    check(lib.gg_stats_reset(st_ptr, 3), "reset")
    check(
        lib.gg_stats_add(
            st_ptr,
            3,
            1,
            ptr("double", strided),
            ptr("uint8_t", np.zeros(3, np.uint8)),
            ptr("double", np.ones(1)),
        ),
        "add",
    )
    check(lib.gg_stats_variance(st_ptr, 3, ptr("double", out, writable=True)), "var")
    np.testing.assert_array_equal(st_arr["mean"], [0.0, 2.0, 4.0])


# ---------------------------------------------------------------- C against the reference


@PROPERTY
@given(windows())
def test_window_matches_reference_on_nasty_values(window) -> None:
    values, quality, ts = window
    assert_matches_reference(summarise_c(values, quality, ts), values, quality, ts)


@PROPERTY
@given(dense_windows())
def test_window_matches_reference_on_dense_random_data(window) -> None:
    values, quality, ts = window
    assert_matches_reference(summarise_c(values, quality, ts), values, quality, ts)


@settings(PROPERTY, max_examples=50)
@given(dense_windows(), st.data())
def test_chunked_adds_equal_one_add_frames(window, data) -> None:
    values, quality, ts = window
    whole = summarise_c(values, quality, ts)
    n_frames = values.shape[0]
    cuts = sorted(data.draw(st.lists(st.integers(0, n_frames), max_size=5)))
    w = WindowStats(values.shape[1])
    for lo, hi in zip([0, *cuts], [*cuts, n_frames], strict=True):
        w.add_frames(values[lo:hi], quality[lo:hi], ts[lo:hi])
    _assert_same_summary(w.snapshot(), whole)


def _assert_same_summary(a: WindowSummary, b: WindowSummary) -> None:
    """Bitwise equal: the same samples in the same order go through the same operations."""
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_array_equal(a.bad, b.bad)
    for name in FLOAT_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_many_single_frame_adds_equal_one_add_frames() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(230.0, 5.0, (40, 12))
    values[rng.random(values.shape) < 0.1] = np.nan
    quality = rng.choice([0, 0, 0, 1, 2], values.shape).astype(np.uint8)
    ts = 1.7e9 + np.arange(40.0)
    w = WindowStats(12)
    for f in range(40):
        w.add(values[f], quality[f], float(ts[f]))
    _assert_same_summary(w.snapshot(), summarise_c(values, quality, ts))
    assert_matches_reference(w.snapshot(), values, quality, ts)


# ---------------------------------------------------------------- edges


def _assert_empty(s: WindowSummary, bad: np.ndarray) -> None:
    np.testing.assert_array_equal(s.count, 0)
    np.testing.assert_array_equal(s.bad, bad)
    for name in FLOAT_FIELDS:
        assert np.all(np.isnan(getattr(s, name))), name


def test_empty_window_is_count_zero_and_nan() -> None:
    w = WindowStats(4)
    _assert_empty(w.snapshot(), np.zeros(4))
    w.add_frames(np.empty((0, 4)), np.empty((0, 4), np.uint8), np.empty(0))
    _assert_empty(w.snapshot(), np.zeros(4))
    assert WindowStats(0).snapshot().count.shape == (0,)


def test_window_of_only_nan_inf_or_bad_samples_is_empty_with_bad_counted() -> None:
    values = np.array([[np.nan, np.inf, -np.inf, 1.0], [np.nan, 2.0, 3.0, 4.0]])
    quality = np.array([[0, 0, 0, 2], [0, 1, 2, 2]], dtype=np.uint8)
    w = WindowStats(4)
    w.add_frames(values, quality, np.array([1.0, 2.0]))
    _assert_empty(w.snapshot(), np.full(4, 2))


def test_single_sample() -> None:
    w = WindowStats(2)
    w.add(np.array([-3.5, np.nan]), np.array([0, 0], np.uint8), 100.0)
    s = w.snapshot()
    assert s.count.tolist() == [1, 0] and s.bad.tolist() == [0, 1]
    assert (s.min[0], s.max[0], s.mean[0], s.last[0]) == (-3.5, -3.5, -3.5, -3.5)
    assert (s.variance[0], s.first_ts[0], s.last_ts[0]) == (0.0, 100.0, 100.0)


def test_first_and_last_follow_good_samples_only() -> None:
    values = np.array([[np.nan], [1.0], [2.0], [9.0], [np.inf]])
    quality = np.array([[0], [0], [0], [2], [0]], dtype=np.uint8)
    s = summarise_c(values, quality, np.array([10.0, 11.0, 12.0, 13.0, 14.0]))
    assert (s.first_ts[0], s.last_ts[0], s.last[0], s.mean[0]) == (11.0, 12.0, 2.0, 1.5)
    assert (s.count[0], s.bad[0], s.variance[0]) == (2, 3, 0.25)


def test_extreme_magnitudes_keep_the_mean_finite() -> None:
    big = np.finfo(np.float64).max
    values = np.array([[big, -big, 5e-324], [big, big, 5e-324], [big, -big, 5e-324]])
    s = summarise_c(values, np.zeros((3, 3), np.uint8), np.arange(3.0))
    assert s.mean[0] == big and s.variance[0] == 0.0
    assert np.isfinite(s.mean[1]) and abs(s.mean[1] - (-big / 3)) <= 1e-15 * big
    assert s.variance[1] == np.inf  # the spread overflows: +inf, never NaN
    assert s.mean[2] == 5e-324 and s.variance[2] == 0.0


def test_reset_empties_the_window() -> None:
    w = WindowStats(2)
    w.add(np.array([1.0, 2.0]), np.zeros(2, np.uint8), 1.0)
    w.reset()
    _assert_empty(w.snapshot(), np.zeros(2))


def test_snapshot_is_not_changed_by_later_adds() -> None:
    w = WindowStats(1)
    w.add(np.array([1.0]), np.zeros(1, np.uint8), 1.0)
    s = w.snapshot()
    w.add(np.array([5.0]), np.zeros(1, np.uint8), 2.0)
    assert (s.count[0], s.max[0], s.last_ts[0]) == (1, 1.0, 1.0)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("bad_ts", [np.nan, np.inf, -np.inf])
def test_non_finite_timestamp_is_refused_and_changes_nothing(bad_ts: float) -> None:
    w = WindowStats(2)
    w.add(np.array([1.0, 2.0]), np.zeros(2, np.uint8), 1.0)
    before = w.snapshot()
    with pytest.raises(NativeError, match="GG_EINVAL"):
        w.add_frames(np.ones((2, 2)), np.zeros((2, 2), np.uint8), np.array([2.0, bad_ts]))
    _assert_same_summary(w.snapshot(), before)


def test_wrapper_refuses_wrong_shapes_and_dtypes() -> None:
    w = WindowStats(3)
    with pytest.raises(NativeError, match="3 points"):
        w.add(np.zeros(2), np.zeros(2, np.uint8), 1.0)
    with pytest.raises(NativeError, match="3 points"):
        w.add(np.zeros(3), np.zeros(4, np.uint8), 1.0)
    with pytest.raises(NativeError, match="one entry per frame"):
        w.add_frames(np.zeros((2, 3)), np.zeros((2, 3), np.uint8), np.zeros(3))
    with pytest.raises(NativeError, match="dtype uint8"):
        w.add(np.zeros(3), np.zeros(3, np.int64), 1.0)
    with pytest.raises(NativeError, match="dtype float64"):
        w.add(np.zeros(3, np.float32), np.zeros(3, np.uint8), 1.0)
    with pytest.raises(NativeError, match=">= 0"):
        WindowStats(-1)
    for deadband in ([-1.0], [np.nan], [[1.0]]):
        with pytest.raises(NativeError, match="deadband"):
            ReportByException(deadband)


def test_null_pointers_and_overflowing_sizes_are_einval() -> None:
    st_arr = np.zeros(2, dtype=STAT_DTYPE)
    s = ptr("gg_stat_t", st_arr, dtype=STAT_DTYPE, writable=True)
    v, q, t = (
        ptr("double", np.zeros(2)),
        ptr("uint8_t", np.zeros(2, np.uint8)),
        ptr("double", np.zeros(1)),
    )
    out, out_q = np.zeros(2), np.zeros(2, np.uint8)
    o, oq = ptr("double", out, writable=True), ptr("uint8_t", out_q, writable=True)
    null = ffi.NULL
    calls = {
        "reset": lambda: lib.gg_stats_reset(null, 2),
        "add st": lambda: lib.gg_stats_add(null, 2, 1, v, q, t),
        "add values": lambda: lib.gg_stats_add(s, 2, 1, null, q, t),
        "add quality": lambda: lib.gg_stats_add(s, 2, 1, v, null, t),
        "add ts": lambda: lib.gg_stats_add(s, 2, 1, v, q, null),
        "add size overflow": lambda: lib.gg_stats_add(s, 2, 2**64 - 1, v, q, t),
        "variance st": lambda: lib.gg_stats_variance(null, 2, o),
        "variance out": lambda: lib.gg_stats_variance(s, 2, null),
        "rbe value": lambda: lib.gg_rbe(2, null, q, o, oq, v, oq),
        "rbe report": lambda: lib.gg_rbe(2, v, q, o, oq, v, null),
    }
    for what, call in calls.items():
        with pytest.raises(NativeError, match="GG_EINVAL"):
            check(call(), what)
    # Zero-sized calls need no buffers at all.
    assert lib.gg_stats_reset(null, 0) == lib.gg_stats_add(null, 0, 0, null, null, null) == 0
    assert (
        lib.gg_stats_variance(null, 0, null)
        == lib.gg_rbe(0, null, null, null, null, null, null)
        == 0
    )


# ---------------------------------------------------------------- report-by-exception


def _frame(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _q(*qualities: int) -> np.ndarray:
    return np.array(qualities, dtype=np.uint8)


def test_rbe_semantics() -> None:
    rbe = ReportByException([0.5, 0.5, 0.0])
    # Never reported: everything goes out, whatever its quality or value.
    assert rbe.changed(_frame(1.0, np.nan, 3.0), _q(0, 2, 0)).tolist() == [True, True, True]
    # Within the deadband (strictly greater is needed), BAD with a new value, exact same value.
    assert rbe.changed(_frame(1.5, 7.0, 3.0), _q(0, 2, 0)).tolist() == [False, False, False]
    # Drift accumulates against the last *reported* value, not the last seen one.
    assert rbe.changed(_frame(1.6, 7.0, 3.0 + 1e-12), _q(0, 2, 0)).tolist() == [True, False, True]
    # Quality changes always go out, both ways; the value comes with them.
    assert rbe.changed(_frame(1.6, 7.0, 3.0), _q(1, 0, 0)).tolist() == [True, True, True]
    assert rbe.changed(_frame(1.6, 7.0, 3.0), _q(0, 0, 0)).tolist() == [True, False, False]
    # A GOOD-quality NaN is a change (upstream must not keep showing the old number), once.
    assert rbe.changed(_frame(np.nan, 7.0, 3.0), _q(0, 0, 0)).tolist() == [True, False, False]
    assert rbe.changed(_frame(np.nan, 7.0, 3.0), _q(0, 0, 0)).tolist() == [False, False, False]
    assert rbe.changed(_frame(1.0, np.inf, 3.0), _q(0, 0, 0)).tolist() == [True, True, False]
    assert rbe.changed(_frame(1.0, np.inf, 3.0), _q(0, 0, 0)).tolist() == [False, False, False]
    assert rbe.changed(_frame(1.0, -np.inf, 3.0), _q(0, 0, 0)).tolist() == [False, True, False]
    rbe.reset()
    assert rbe.changed(_frame(1.0, -np.inf, 3.0), _q(0, 0, 0)).tolist() == [True, True, True]


def test_rbe_infinite_deadband_reports_quality_changes_only() -> None:
    rbe = ReportByException([np.inf])
    assert rbe.changed(_frame(1.0), _q(0)).tolist() == [True]
    assert rbe.changed(_frame(1e300), _q(0)).tolist() == [False]
    assert rbe.changed(_frame(1e300), _q(2)).tolist() == [True]


def test_rbe_returns_the_number_reported_and_refuses_bad_deadbands_untouched() -> None:
    value, quality = _frame(1.0, 2.0, 3.0), _q(0, 0, 2)
    last, last_q = stats_ref.never_reported(3)
    last_q[1] = 0
    last[1] = 2.0
    out = np.zeros(3, np.uint8)
    n = lib.gg_rbe(
        3,
        ptr("double", value),
        ptr("uint8_t", quality),
        ptr("double", last, writable=True),
        ptr("uint8_t", last_q, writable=True),
        ptr("double", np.zeros(3)),
        ptr("uint8_t", out, writable=True),
    )
    assert n == 2 and out.tolist() == [1, 0, 1]
    for bad_deadband in (-1e-300, np.nan):
        state = (last.copy(), last_q.copy())
        status = lib.gg_rbe(
            3,
            ptr("double", _frame(9.0, 9.0, 9.0)),
            ptr("uint8_t", _q(1, 1, 1)),
            ptr("double", last, writable=True),
            ptr("uint8_t", last_q, writable=True),
            ptr("double", _frame(1.0, 1.0, bad_deadband)),
            ptr("uint8_t", out, writable=True),
        )
        assert status == lib.GG_EINVAL
        np.testing.assert_array_equal(last, state[0])
        np.testing.assert_array_equal(last_q, state[1])


RBE_VALUES = st.one_of(SPECIALS, st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, -1.0]), MAGNITUDES)


@PROPERTY
@given(st.data())
def test_rbe_matches_reference_over_a_sequence_of_frames(data) -> None:
    n = data.draw(st.integers(0, 20))
    deadband = data.draw(
        hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 0.5, 1.0, np.inf]))
    )
    rbe = ReportByException(deadband)
    last, last_q = stats_ref.never_reported(n)
    for _ in range(data.draw(st.integers(1, 8))):
        values = data.draw(hnp.arrays(np.float64, n, elements=RBE_VALUES))
        quality = data.draw(hnp.arrays(np.uint8, n, elements=QUALITIES.map(int)))
        want, last, last_q = stats_ref.report_by_exception(values, quality, last, last_q, deadband)
        np.testing.assert_array_equal(rbe.changed(values, quality), want)
    np.testing.assert_array_equal(rbe._last_reported, last)
    np.testing.assert_array_equal(rbe._last_quality, last_q)
