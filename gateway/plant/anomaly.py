"""The anomaly model runner: feature windows -> score + per-feature contributions -> subsystem.

The model is a small dense autoencoder trained on normal operation only; what it cannot
reconstruct is what it has not seen. Each feature's squared reconstruction error over the window,
relative to its mean on the training data, is that feature's contribution; the score is their
mean (about 1 in normal operation), and each feature's share says where to look: the shares of
the features of one subsystem ("bearing", "lube oil", ...) add up to that subsystem's share, and
the largest one is named in the warning.

A warning is raised after ``raise_after`` consecutive windows above the threshold and cleared
after ``clear_after`` consecutive windows below ``clear_fraction * threshold``; the threshold was
calibrated with exactly that debounce (see the sidecar's ``calibration`` and docs/plant-model.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.core.alarms import AlarmEvent
from gateway.plant.feature_sets import FeatureSet, feature_set
from gateway.plant.features import FloatArray, Normaliser, WindowBuilder, WindowSpec
from gateway.plant.tflite import ModelError, TfliteModel, load_model

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent / "models"
SIDECAR_FORMAT = 1


@dataclass(frozen=True)
class AlarmPolicy:
    raise_after: int
    clear_after: int
    clear_fraction: float


@dataclass(frozen=True)
class ModelCard:
    """The sidecar JSON of one shipped model: everything needed to feed and read it."""

    profile: str
    model_file: str
    features: tuple[str, ...]
    subsystems: tuple[str, ...]  # aligned with features
    normaliser: Normaliser
    window: WindowSpec
    threshold: float
    alarm: AlarmPolicy
    raw: dict[str, Any]  # the whole sidecar, for calibration/training statements and results

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        try:
            d = json.loads(path.read_text())
            if d.get("format") != SIDECAR_FORMAT:
                raise ModelError(f"{path}: sidecar format {d.get('format')!r} is not supported")
            feats = d["features"]
            return cls(
                profile=str(d["profile"]),
                model_file=str(d["model"]),
                features=tuple(str(f["name"]) for f in feats),
                subsystems=tuple(str(f["subsystem"]) for f in feats),
                normaliser=Normaliser(
                    tuple(float(v) for v in d["normaliser"]["mean"]),
                    tuple(float(v) for v in d["normaliser"]["std"]),
                ),
                window=WindowSpec(
                    float(d["window"]["sample_period_s"]),
                    int(d["window"]["block_samples"]),
                    int(d["window"]["blocks"]),
                ),
                threshold=float(d["threshold"]),
                alarm=AlarmPolicy(
                    int(d["alarm"]["raise_after"]),
                    int(d["alarm"]["clear_after"]),
                    float(d["alarm"]["clear_fraction"]),
                ),
                raw=d,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path}: unusable sidecar: {exc!r}") from exc


class AnomalyModel:
    """One profile's autoencoder with its sidecar; scores batches of windows."""

    def __init__(self, card: ModelCard, model: TfliteModel, features: FeatureSet) -> None:
        if tuple(f.name for f in features.features) != card.features:
            raise ModelError(
                f"model {card.profile} was trained on features {list(card.features)}, "
                f"the code extracts {[f.name for f in features.features]}"
            )
        n_in = card.window.blocks * len(card.features)
        if model.input_size != n_in or model.output_size != n_in:
            raise ModelError(
                f"model {card.profile} takes {model.input_size} inputs, the sidecar implies {n_in}"
            )
        self.card = card
        self.model = model
        baseline = card.raw.get("error_baseline") or [1.0] * len(card.features)
        self._baseline = np.asarray(baseline, dtype=np.float64)
        if self._baseline.shape != (len(card.features),) or not np.all(self._baseline > 0.0):
            raise ModelError(f"model {card.profile}: error_baseline must be F positive numbers")
        self.features = features
        self._subsystem_names = tuple(dict.fromkeys(card.subsystems))
        # (F, S) 0/1 matrix: feature shares -> subsystem shares in one matmul
        self._to_subsystem = np.array(
            [[1.0 if s == name else 0.0 for name in self._subsystem_names] for s in card.subsystems]
        )

    @classmethod
    def load(
        cls, profile: str, directory: Path | None = None, backend: str | None = None
    ) -> AnomalyModel:
        """Load ``<profile>.json`` and its ``.tflite`` from ``directory`` (default: shipped)."""
        where = directory if directory is not None else MODELS_DIR
        card = ModelCard.read(where / f"{profile}.json")
        features = feature_set(card.profile, card.raw.get("feature_params"))
        return cls(card, load_model(where / card.model_file, backend), features)

    @property
    def subsystems(self) -> tuple[str, ...]:
        return self._subsystem_names

    def reconstruct(self, windows: npt.ArrayLike) -> FloatArray:
        return self.model.run(windows).astype(np.float64)

    def feature_errors(self, windows: npt.ArrayLike) -> FloatArray:
        """Squared reconstruction error per feature ``(N, F)``, summed over the window's blocks."""
        x = np.atleast_2d(np.asarray(windows, dtype=np.float32)).astype(np.float64)
        err = (self.reconstruct(x) - x) ** 2
        n_f = len(self.card.features)
        out: FloatArray = err.reshape(len(x), self.card.window.blocks, n_f).sum(axis=1)
        return out

    def score(self, windows: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Scores ``(N,)`` and per-feature error shares ``(N, F)`` (rows sum to 1).

        Each feature's error is divided by its mean error on the training windows (the sidecar's
        ``error_baseline``), so a feature the model reconstructs closely (fuel flow against load)
        weighs as much as a noisy one (a single thermocouple): the score is about 1 in normal
        operation, and a share says which feature is off *relative to its normal*.
        """
        weighted = self.feature_errors(windows) / self._baseline
        total = weighted.sum(axis=1)
        shares = weighted / np.where(total > 0.0, total, 1.0)[:, None]
        return total / weighted.shape[1], shares

    def subsystem_shares(self, feature_shares: FloatArray) -> FloatArray:
        """Feature shares ``(N, F)`` -> subsystem shares ``(N, S)`` in :attr:`subsystems` order."""
        return np.asarray(feature_shares @ self._to_subsystem, dtype=np.float64)


@dataclass(frozen=True)
class Assessment:
    """The result of one scored window."""

    ts: float
    score: float
    threshold: float
    contributions: dict[str, float]  # feature -> share of the error
    subsystems: tuple[tuple[str, float], ...]  # ranked, largest share first
    warning: bool  # the debounced state after this window
    event: AlarmEvent | None  # a raise or clear transition, sent at once

    @property
    def subsystem(self) -> str:
        return self.subsystems[0][0]


class AnomalyDetector:
    """Streams tag samples of one device through features, windows, model and debounce."""

    def __init__(self, device: str, model: AnomalyModel) -> None:
        self.device = device
        self.model = model
        self._windows = WindowBuilder(len(model.card.features), model.card.window)
        self._above = 0
        self._below = 0
        self._active = False
        self._streak_shares = np.zeros(len(model.subsystems))

    @property
    def warning(self) -> bool:
        return self._active

    def push(self, ts: float, tags: Mapping[str, float]) -> Assessment | None:
        """Take one sample (one per ``sample_period_s``); returns an assessment when one is due."""
        card = self.model.card
        sample = self.model.features.extract(ts, tags)
        window = self._windows.push(card.normaliser.apply(sample))
        if window is None:
            return None
        scores, shares = self.model.score(window[None, :])
        score = float(scores[0])
        sub = self.model.subsystem_shares(shares)[0]
        event = self._debounce(ts, score, sub)
        order = np.argsort(-sub, kind="stable")
        return Assessment(
            ts,
            score,
            card.threshold,
            {name: float(s) for name, s in zip(card.features, shares[0], strict=True)},
            tuple((self.model.subsystems[i], float(sub[i])) for i in order),
            self._active,
            event,
        )

    def _debounce(self, ts: float, score: float, sub: FloatArray) -> AlarmEvent | None:
        card = self.model.card
        if score > card.threshold:
            self._above += 1
            self._streak_shares = self._streak_shares + sub
        else:
            self._above = 0
            self._streak_shares = np.zeros_like(sub)
        self._below = self._below + 1 if score < card.alarm.clear_fraction * card.threshold else 0
        if not self._active and self._above >= card.alarm.raise_after:
            self._active = True
            # the streak's mean shares name the subsystem: steadier than the last window alone
            mean = self._streak_shares / self._above
            i = int(np.argmax(mean))
            name = self.model.subsystems[i]
            log.warning(
                "%s: anomaly raised, score %.3g > %.3g, look at %s (%.0f%%)",
                self.device,
                score,
                card.threshold,
                name,
                100.0 * mean[i],
            )
            return AlarmEvent(
                "anomaly",
                "raised",
                self.device,
                ts,
                name,
                score,
                card.threshold,
                cause=f"{name} {100.0 * mean[i]:.0f}% of the reconstruction error",
            )
        if self._active and self._below >= card.alarm.clear_after:
            self._active = False
            log.info("%s: anomaly cleared, score %.3g", self.device, score)
            return AlarmEvent("anomaly", "cleared", self.device, ts, None, score, card.threshold)
        return None
