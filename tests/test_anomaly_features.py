"""Feature windows and the plant features, against hand-computed references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.core.errors import ConfigError
from gateway.plant.feature_sets import RUNNING_STATE, FeatureSet, feature_set
from gateway.plant.features import Normaliser, WindowBuilder, WindowSpec, make_windows

SPEC = WindowSpec(sample_period_s=1.0, block_samples=4, blocks=3)


def test_streaming_windows_equal_batch_windows_across_gaps() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    x[37] = np.nan  # kills block 9 (samples 36..39): windows must restart after it
    x[150:163] = np.nan
    batch, ends = make_windows(x, SPEC)
    wb = WindowBuilder(3, SPEC)
    stream, stream_ends = [], []
    for i, row in enumerate(x):
        w = wb.push(row)
        if w is not None:
            stream.append(w)
            stream_ends.append(i)
    np.testing.assert_allclose(np.array(stream), batch, rtol=0, atol=1e-12)
    assert stream_ends == ends.tolist()
    # the first window after the gap at block 9 ends with block 12 (samples 48..51)
    assert 47 not in stream_ends and 51 in stream_ends and 43 not in stream_ends


def test_a_window_is_block_means_in_time_order() -> None:
    x = np.arange(24, dtype=float).reshape(12, 2)  # 3 blocks of 4 samples
    windows, ends = make_windows(x, SPEC)
    # block means of rows 0..3, 4..7, 8..11 of columns (2i, 2i+1)
    expected = [3.0, 4.0, 11.0, 12.0, 19.0, 20.0]
    assert windows.tolist() == [expected] and ends.tolist() == [11]


def test_normaliser_standardises_valid_rows_only() -> None:
    x = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 100.0]])
    n = Normaliser.fit(x)
    assert n.mean == (2.0, 5.0) and n.std == (1.0, 1.0)  # constant column: std 1, not 0
    np.testing.assert_allclose(n.apply([[4.0, 7.0]]), [[2.0, 2.0]])


def test_bad_window_spec_lists_every_issue() -> None:
    with pytest.raises(ConfigError) as err:
        WindowSpec(0.0, 0, 0)
    assert len(err.value.issues) == 3


def _gt_tags(tc: list[float], state: float = RUNNING_STATE) -> dict[str, float]:
    tags = {
        "state": state,
        "power": 2750.0,
        "inlet_temp": 10.0,
        "fuel_flow": 700.0,
        "cdp": 11.0,
        "bearing_vibration": 1.6,
        "lube_oil_temp": 50.0,
        "lube_oil_pressure": 2.5,
    }
    tags.update({f"exhaust_temp_{i + 1}": v for i, v in enumerate(tc)})
    return tags


def _settled_gt(pattern: list[float]) -> FeatureSet:
    fs = feature_set("gas_turbine", {"tc_pattern": pattern, "settle_s": 10.0})
    fs.extract(0.0, _gt_tags([500.0] * 6))
    return fs


def test_single_thermocouple_offset_is_an_outlier_not_a_burner_pattern() -> None:
    pattern = [2.0, -1.0, 0.0, 1.0, -3.0, 1.0]
    fs = _settled_gt(pattern)
    d = 12.0
    tc = [500.0 + p for p in pattern]
    tc[3] += d
    f = dict(zip([x.name for x in fs.features], fs.extract(20.0, _gt_tags(tc)), strict=True))
    # residuals: channel 4 at +5d/6, every other at -d/6
    assert f["tc_outlier"] == pytest.approx(5 * d / 6 + (d / 6) / 0.35)
    assert f["burner_pattern"] == pytest.approx(0.0, abs=1e-9)
    assert f["exhaust_mean"] == pytest.approx(500.0 + d / 6)
    assert f["load"] == pytest.approx(0.5)


def test_weak_burner_with_swirl_onto_neighbours_is_a_burner_pattern() -> None:
    fs = _settled_gt([0.0] * 6)
    c = 30.0
    shape = [-1.0, -0.35, 1.7 / 3, 1.7 / 3, 1.7 / 3, -0.35]  # burner 1 cold, mean kept
    f = fs.extract(20.0, _gt_tags([500.0 + c * s for s in shape]))
    names = [x.name for x in fs.features]
    assert f[names.index("tc_outlier")] == pytest.approx(0.0, abs=1e-9)
    # sign of the cold channel (-1) times (neighbours - far) = -(-0.35c - 0.567c)
    assert f[names.index("burner_pattern")] == pytest.approx(c * (0.35 + 1.7 / 3))


def test_features_are_nan_until_running_long_enough() -> None:
    fs = feature_set("gas_turbine", {"settle_s": 100.0})
    tags = _gt_tags([500.0] * 6)
    assert np.isnan(fs.extract(0.0, tags)).all()
    assert np.isnan(fs.extract(99.0, tags)).all()
    assert not np.isnan(fs.extract(100.0, tags)).any()
    assert np.isnan(fs.extract(101.0, _gt_tags([500.0] * 6, state=4.0))).all()  # tripped
    assert np.isnan(fs.extract(102.0, tags)).all()  # the settle time starts again
    missing = dict(tags)
    del missing["cdp"]
    assert np.isnan(fs.extract(300.0, missing)).all()


def test_chp_features_from_tags() -> None:
    fs = feature_set("biogas_chp", {"settle_s": 0.0})
    tags = {
        "state": RUNNING_STATE,
        "engine_power": 400.0,
        "ambient_temp": 5.0,
        "coolant_return_temp": 63.0,
        "heat_power": 450.0,
        "coolant_supply_temp": 79.0,
        "methane_content": 54.0,
        "gas_flow": 190.0,
        "exhaust_temp": 510.0,
        "bearing_vibration": 2.9,
        "lube_oil_temp": 82.0,
        "lube_oil_pressure": 4.4,
    }
    f = fs.extract(0.0, tags)
    assert f.tolist() == [0.8, 5.0, 63.0, 450.0, 16.0, 54.0, 190.0, 510.0, 2.9, 82.0, 4.4]
    assert not any(math.isnan(v) for v in f)
