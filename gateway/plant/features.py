"""Feature windows for the anomaly model: normalise samples, average into blocks, stack blocks.

One sample per ``sample_period_s`` (the daemon samples the latest tag values on a fixed clock) is
normalised per feature with the training data's mean and standard deviation, averaged over
``block_samples`` samples (block means take the sensor noise out), and the last ``blocks`` block
means form one window, flattened block by block into the model's input row. A window is emitted
every block, so the model scores once per block.

A sample whose features are missing (NaN: the machine is stopped, a tag is BAD) invalidates its
block, and an invalid block restarts the window: the model only sees stretches of valid operation.
The batch function :func:`make_windows` and the streaming :class:`WindowBuilder` produce the same
windows; training uses the former, the daemon the latter.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.core.errors import ConfigError, ConfigIssue

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class WindowSpec:
    """Shape of one model input: ``blocks`` means of ``block_samples`` samples each."""

    sample_period_s: float
    block_samples: int
    blocks: int

    def __post_init__(self) -> None:
        issues = []
        if not self.sample_period_s > 0.0:
            issues.append(ConfigIssue("<window>", "sample_period_s", "must be > 0"))
        if self.block_samples < 1:
            issues.append(ConfigIssue("<window>", "block_samples", "must be >= 1"))
        if self.blocks < 1:
            issues.append(ConfigIssue("<window>", "blocks", "must be >= 1"))
        if issues:
            raise ConfigError(issues)

    @property
    def block_s(self) -> float:
        """Seconds between two scores."""
        return self.sample_period_s * self.block_samples

    @property
    def span_s(self) -> float:
        """Seconds of plant data one window covers."""
        return self.block_s * self.blocks


@dataclass(frozen=True)
class Normaliser:
    """Per-feature standardisation with the training data's statistics."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, samples: FloatArray) -> Normaliser:
        """Mean and std over the valid (all-finite) rows; a constant feature gets std 1."""
        valid = samples[np.all(np.isfinite(samples), axis=1)]
        mean = valid.mean(axis=0)
        std = valid.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def apply(self, samples: npt.ArrayLike) -> FloatArray:
        x = np.asarray(samples, dtype=np.float64)
        out: FloatArray = (x - np.asarray(self.mean)) / np.asarray(self.std)
        return out


def make_windows(samples: FloatArray, spec: WindowSpec) -> tuple[FloatArray, IntArray]:
    """All windows of a ``(T, F)`` series of normalised samples.

    Returns ``(windows, ends)``: ``windows`` is ``(N, blocks * F)`` and ``ends[i]`` the index of
    the last sample in window ``i`` (its timestamp is when the window is scored).
    """
    x = np.asarray(samples, dtype=np.float64)
    t, f = x.shape
    nb = t // spec.block_samples
    block_means = x[: nb * spec.block_samples].reshape(nb, spec.block_samples, f).mean(axis=1)
    if nb < spec.blocks:
        return np.empty((0, spec.blocks * f)), np.empty(0, dtype=np.int64)
    stacked = np.lib.stride_tricks.sliding_window_view(block_means, spec.blocks, axis=0)
    # sliding_window_view puts the window axis last: (N, F, blocks) -> (N, blocks, F)
    stacked = stacked.transpose(0, 2, 1).reshape(-1, spec.blocks * f)
    valid = np.all(np.isfinite(stacked), axis=1)
    ends = (np.arange(spec.blocks, nb + 1, dtype=np.int64) * spec.block_samples) - 1
    return np.ascontiguousarray(stacked[valid]), ends[valid]


class WindowBuilder:
    """Streaming windows: :meth:`push` one normalised sample, get a window when a block closes."""

    def __init__(self, n_features: int, spec: WindowSpec) -> None:
        self.spec = spec
        self._block = np.empty((spec.block_samples, n_features), dtype=np.float64)
        self._filled = 0
        self._means: deque[FloatArray] = deque(maxlen=spec.blocks)

    def reset(self) -> None:
        self._filled = 0
        self._means.clear()

    def push(self, sample: Sequence[float] | FloatArray) -> FloatArray | None:
        self._block[self._filled] = sample
        self._filled += 1
        if self._filled < self.spec.block_samples:
            return None
        self._filled = 0
        mean = self._block.mean(axis=0)
        if not np.all(np.isfinite(mean)):
            self._means.clear()
            return None
        self._means.append(mean)
        if len(self._means) < self.spec.blocks:
            return None
        return np.concatenate(self._means)
