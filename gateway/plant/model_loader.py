"""Which anomaly model the plant daemon runs: the configured sidecar or the profile's packaged one.

The sidecar JSON names the model file and its feature parameters; the config may override the
settle time (a machine that takes longer to reach steady state than the training data's).
"""

from __future__ import annotations

from gateway.plant.anomaly import MODELS_DIR, AnomalyModel, ModelCard
from gateway.plant.config import PlantConfig
from gateway.plant.feature_sets import feature_set
from gateway.plant.tflite import load_model


def load_anomaly_model(cfg: PlantConfig) -> AnomalyModel:
    """The configured (or packaged) model, with the config's settle time if it sets one.

    Raises :class:`~gateway.plant.tflite.ModelError` when the model cannot be loaded.
    """
    sidecar = cfg.model if cfg.model is not None else MODELS_DIR / f"{cfg.profile}.json"
    card = ModelCard.read(sidecar)
    params = dict(card.raw.get("feature_params") or {})
    if cfg.settle_s is not None:
        params["settle_s"] = cfg.settle_s
    features = feature_set(card.profile, params)
    return AnomalyModel(card, load_model(sidecar.parent / card.model_file), features)
