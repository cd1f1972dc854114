"""One adapter over the two TensorFlow Lite interpreter packages.

``ai_edge_litert`` (the successor of ``tflite_runtime``) is preferred: it works with numpy 2, and
``tflite_runtime`` 2.14 does not (its interpreter fails with ``_ARRAY_API not found``). Older images
that still ship ``tflite_runtime`` with numpy < 2 keep working through the fallback. Both expose the
same ``Interpreter`` API, so everything past :func:`load_model` is backend-agnostic.

``GRIDGATE_TFLITE_BACKEND`` (``ai_edge_litert`` or ``tflite_runtime``) forces one backend; CI uses
it to prove which one a test ran on.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.core.errors import GatewayError

log = logging.getLogger(__name__)

LITERT: Final = "ai_edge_litert"
TFLITE_RUNTIME: Final = "tflite_runtime"
BACKENDS: Final = (LITERT, TFLITE_RUNTIME)
BACKEND_ENV: Final = "GRIDGATE_TFLITE_BACKEND"

F32Array = npt.NDArray[np.float32]


class ModelError(GatewayError):
    """A model file or its interpreter cannot be used (missing backend, bad file, bad shape)."""


def _interpreter_class(backend: str) -> Any:
    module = f"{backend}.interpreter"
    try:
        return importlib.import_module(module).Interpreter
    except ImportError as exc:
        raise ModelError(f"TFLite backend {backend} is not installed: {exc}") from exc


def choose_backend(env: Mapping[str, str] | None = None) -> str:
    """The backend to use: the one forced by ``GRIDGATE_TFLITE_BACKEND``, else the first installed.

    Raises :class:`ModelError` for an unknown forced name or when neither package is installed.
    """
    forced = (os.environ if env is None else env).get(BACKEND_ENV, "").strip()
    if forced:
        if forced not in BACKENDS:
            raise ModelError(f"{BACKEND_ENV}={forced!r} is not one of {', '.join(BACKENDS)}")
        _interpreter_class(forced)
        return forced
    causes = []
    for backend in BACKENDS:
        try:
            _interpreter_class(backend)
        except ModelError as exc:
            causes.append(str(exc))
            continue
        return backend
    raise ModelError("no TFLite interpreter: " + "; ".join(causes))


class TfliteModel:
    """A loaded ``.tflite`` model with one float32 input and one float32 output.

    :meth:`run` takes a batch ``(n, d_in)`` and returns ``(n, d_out)``; the input tensor is resized
    only when the batch size changes, so the daemon's one-window-at-a-time calls allocate nothing.
    """

    def __init__(self, content: bytes, backend: str, *, num_threads: int = 1) -> None:
        self.backend = backend
        cls = _interpreter_class(backend)
        try:
            self._interp = cls(model_content=content, num_threads=num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError, AttributeError, ImportError, SystemError) as exc:
            # tflite_runtime 2.14 under numpy 2 fails here, not at import: name that cause.
            raise ModelError(
                f"{backend} cannot build an interpreter (numpy {np.__version__}): {exc}"
            ) from exc
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"model must have one input and one output, has {len(inputs)}/{len(outputs)}"
            )
        for detail in (inputs[0], outputs[0]):
            if detail["dtype"] != np.float32 or len(detail["shape"]) != 2:
                raise ModelError(
                    f"tensor {detail['name']} must be float32 (batch, n), is "
                    f"{np.dtype(detail['dtype']).name} {list(detail['shape'])}"
                )
        self._in = int(inputs[0]["index"])
        self._out = int(outputs[0]["index"])
        self.input_size = int(inputs[0]["shape"][1])
        self.output_size = int(outputs[0]["shape"][1])
        self._batch = int(inputs[0]["shape"][0])

    def run(self, x: npt.ArrayLike) -> F32Array:
        """Run the model on a batch of rows; returns a fresh float32 array."""
        batch = np.ascontiguousarray(x, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.input_size:
            raise ModelError(f"input must be (n, {self.input_size}), got {batch.shape}")
        if batch.shape[0] != self._batch:
            self._interp.resize_tensor_input(self._in, [batch.shape[0], self.input_size])
            self._interp.allocate_tensors()
            self._batch = batch.shape[0]
        self._interp.set_tensor(self._in, batch)
        self._interp.invoke()
        return np.array(self._interp.get_tensor(self._out), dtype=np.float32, copy=True)


def load_model(path: Path | str, backend: str | None = None) -> TfliteModel:
    """Load a ``.tflite`` file with the given backend, or the one :func:`choose_backend` picks."""
    chosen = backend if backend is not None else choose_backend()
    if chosen not in BACKENDS:
        raise ModelError(f"unknown TFLite backend {chosen!r}")
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc}") from exc
    model = TfliteModel(content, chosen)
    log.info("loaded model %s with %s (%d inputs)", path, chosen, model.input_size)
    return model
