"""Where TensorFlow is installed (the train venv): the conversion keeps Keras' numbers.

A fresh autoencoder of the shipped architecture is built and converted exactly as
tools/train_anomaly.py does; the ``.tflite`` output through the gateway's adapter must match
Keras within 1e-5 (float32). The shipped models are checked against their committed Keras golden
outputs by test_anomaly_tflite.py in every environment. Skipped where TensorFlow is absent.

    PYTHONPATH=. /work/venv-train/bin/python -m pytest -q tests/test_anomaly_tf_golden.py
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from gateway.plant.tflite import TfliteModel, choose_backend


def _train_module() -> Any:
    path = Path(__file__).resolve().parents[1] / "tools" / "train_anomaly.py"
    spec = importlib.util.spec_from_file_location("train_anomaly", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("n_in", [60, 66])
def test_tflite_conversion_matches_keras_within_1e_5(n_in: int) -> None:
    train = _train_module()
    ae = train.build_autoencoder(n_in, 12, 5, seed=3)
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.5, (256, n_in)).astype(np.float32)
    ae.fit(x, x, epochs=2, batch_size=64, verbose=0)  # trained weights, not just the init
    keras_out = np.asarray(ae(x, training=False), dtype=np.float32)
    tfl = TfliteModel(train.to_tflite(ae), choose_backend())
    diff = np.max(np.abs(tfl.run(x) - keras_out))
    assert diff < 1e-5, diff
