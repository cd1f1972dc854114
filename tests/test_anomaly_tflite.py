"""The TFLite adapter in whichever environment runs it.

The normal suite runs on numpy 2 with ai-edge-litert; CI runs this file again in a venv with
numpy < 2 and tflite-runtime 2.14 only, with GRIDGATE_TFLITE_BACKEND=tflite_runtime. Both must
reproduce the committed golden outputs (made by TensorFlow/Keras before conversion) within 1e-5,
which is what makes the two interpreter packages give the same scores.
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from gateway.plant.anomaly import MODELS_DIR, AnomalyModel
from gateway.plant.tflite import (
    BACKEND_ENV,
    BACKENDS,
    LITERT,
    ModelError,
    TfliteModel,
    choose_backend,
    load_model,
)

PROFILES = ("gas_turbine", "biogas_chp")


def _installed(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


def _golden(profile: str) -> tuple[np.ndarray, np.ndarray]:
    g = json.loads((MODELS_DIR / f"{profile}.golden.json").read_text())
    return np.asarray(g["inputs"], np.float32), np.asarray(g["outputs"], np.float32)


def test_the_backend_used_is_the_forced_one_or_the_preferred_installed_one() -> None:
    model = load_model(MODELS_DIR / "gas_turbine.tflite")
    forced = os.environ.get(BACKEND_ENV)
    if forced:
        assert model.backend == forced
    else:
        expected = next(b for b in BACKENDS if _installed(b))
        assert model.backend == expected
        assert (expected == LITERT) == _installed(LITERT)
    print(f"TFLite backend: {model.backend}, numpy {np.__version__}")


@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_model_reproduces_the_tensorflow_golden_outputs(profile: str) -> None:
    x, want = _golden(profile)
    got = load_model(MODELS_DIR / f"{profile}.tflite").run(x)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-5


@pytest.mark.parametrize("profile", PROFILES)
def test_scores_match_scores_computed_from_the_golden_outputs(profile: str) -> None:
    x, want = _golden(profile)
    model = AnomalyModel.load(profile)
    blocks, n_f = model.card.window.blocks, len(model.card.features)
    err = ((want.astype(np.float64) - x.astype(np.float64)) ** 2).reshape(-1, blocks, n_f)
    baseline = model.card.raw.get("error_baseline") or [1.0] * n_f
    weighted = err.sum(axis=1) / np.asarray(baseline)
    ref = weighted.mean(axis=1)
    scores, shares = model.score(x)
    np.testing.assert_allclose(shares, weighted / weighted.sum(axis=1)[:, None], atol=1e-6)
    np.testing.assert_allclose(scores, ref, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-9)


def test_batch_size_changes_give_the_same_rows() -> None:
    x, _ = _golden("biogas_chp")
    model = load_model(MODELS_DIR / "biogas_chp.tflite")
    one = model.run(x[:1])
    many = model.run(x)
    again = model.run(x[:1])
    np.testing.assert_array_equal(one[0], many[0])
    np.testing.assert_array_equal(one, again)


def test_wrong_input_width_is_a_model_error() -> None:
    model = load_model(MODELS_DIR / "gas_turbine.tflite")
    with pytest.raises(ModelError, match=r"input must be \(n, 60\)"):
        model.run(np.zeros((1, 59), np.float32))


def test_garbage_model_file_is_a_model_error(tmp_path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(ModelError, match="cannot build an interpreter"):
        load_model(bad)
    with pytest.raises(ModelError, match="cannot read model"):
        load_model(tmp_path / "missing.tflite")


def test_unknown_or_missing_forced_backend_is_named() -> None:
    with pytest.raises(ModelError, match="is not one of"):
        choose_backend({BACKEND_ENV: "tensorflow"})
    missing = [b for b in BACKENDS if not _installed(b)]
    for backend in missing:
        with pytest.raises(ModelError, match=f"{backend} is not installed"):
            choose_backend({BACKEND_ENV: backend})
    present = [b for b in BACKENDS if _installed(b)]
    assert present, "no TFLite backend installed at all"
    assert choose_backend({}) == present[0]


def test_input_and_output_sizes_come_from_the_model() -> None:
    content = (MODELS_DIR / "gas_turbine.tflite").read_bytes()
    m = TfliteModel(content, choose_backend())
    assert (m.input_size, m.output_size) == (60, 60)


@pytest.mark.skipif(
    not _installed("tflite_runtime") or int(np.__version__.split(".")[0]) < 2,
    reason="only where tflite_runtime meets numpy 2",
)
def test_tflite_runtime_under_numpy_2_is_a_named_model_error() -> None:
    # tflite-runtime 2.14 is built against numpy 1: its interpreter fails with _ARRAY_API not found
    with pytest.raises(ModelError, match=r"tflite_runtime cannot build an interpreter \(numpy 2"):
        load_model(MODELS_DIR / "gas_turbine.tflite", "tflite_runtime")
