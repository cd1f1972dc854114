"""Thin wrapper over the C register decoder ``gg_decode`` (native/decode.c).

The spec array is a numpy structured array laid out like ``gg_decode_spec_t``; the layout is
asserted against the compiled struct at import so a drifted header fails loudly, not silently.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.core.model import FloatArray, QualityArray
from gateway.native.ffi import assert_layout, check, lib, ptr

SPEC_DTYPE: Final = np.dtype(
    [
        ("reg", np.uint32),
        ("type", np.uint8),
        ("order", np.uint8),
        ("bit", np.uint8),
        ("pad", np.uint8),
        ("scale", np.float64),
        ("offset", np.float64),
    ],
    align=True,
)

SpecArray = npt.NDArray[np.void]
RegisterArray = npt.NDArray[np.uint16]

assert_layout("gg_decode_spec_t", SPEC_DTYPE)


def decode_into(
    regs: RegisterArray, specs: SpecArray, out: FloatArray, quality: QualityArray
) -> None:
    """Decode ``specs`` from ``regs`` into preallocated ``out`` and ``quality``.

    Raises :class:`gateway.core.errors.NativeError` when a spec reads beyond ``regs`` or names
    an unknown type/order/bit; nothing has been written then.
    """
    n = len(specs)
    if len(out) != n or len(quality) != n:
        raise ValueError(f"out and quality must hold {n} points, got {len(out)}, {len(quality)}")
    # The cdata objects keep the (possibly copied) input buffers alive for the call.
    c_regs: Any = ptr("uint16_t", regs)
    c_specs: Any = ptr("gg_decode_spec_t", specs, dtype=SPEC_DTYPE)
    status = lib.gg_decode(
        c_regs,
        len(regs),
        c_specs,
        n,
        ptr("double", out, writable=True),
        ptr("uint8_t", quality, writable=True),
    )
    check(int(status), "gg_decode")


def decode(regs: RegisterArray, specs: SpecArray) -> tuple[FloatArray, QualityArray]:
    """Decode ``specs`` from ``regs`` into new arrays (values float64, quality uint8)."""
    out = np.empty(len(specs), dtype=np.float64)
    quality = np.empty(len(specs), dtype=np.uint8)
    decode_into(regs, specs, out, quality)
    return out, quality
