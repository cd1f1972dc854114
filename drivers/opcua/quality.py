"""OPC UA status codes and values to gridgate's (float, Quality).

The severity lives in the top two bits of a status code (OPC UA Part 4, 7.39): 00 Good,
01 Uncertain, 10 and 11 Bad. Sub-codes (``BadSensorFailure``, ``UncertainLastUsableValue``...)
are kept for the log only; the daemon needs the class.
"""

from __future__ import annotations

import math
from typing import Any

from asyncua import ua

from gateway.core.model import Quality

_SEVERITY_SHIFT = 30


def quality_of(status: ua.StatusCode | int | None) -> Quality:
    """``None`` (a DataValue without a status) means Good, as the specification says."""
    if status is None:
        return Quality.GOOD
    code = status.value if isinstance(status, ua.StatusCode) else int(status)
    severity = (code >> _SEVERITY_SHIFT) & 0b11
    if severity == 0:
        return Quality.GOOD
    if severity == 1:
        return Quality.UNCERTAIN
    return Quality.BAD


def status_name(status: ua.StatusCode | int | None) -> str:
    if status is None:
        return "Good"
    code = status.value if isinstance(status, ua.StatusCode) else int(status)
    return ua.StatusCode(ua.UInt32(code)).name


def as_float(value: Any) -> float | None:
    """A scalar number (or bool) as float; None for anything a frame cannot carry."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def sample(data_value: ua.DataValue) -> tuple[float, Quality]:
    """One DataValue as (value, quality); a Bad value or a non-number is (NaN, BAD)."""
    quality = quality_of(data_value.StatusCode)
    if quality is Quality.BAD:
        return math.nan, Quality.BAD
    variant = data_value.Value
    value = as_float(variant.Value if variant is not None else None)
    if value is None:
        return math.nan, Quality.BAD
    return value, quality


__all__ = ["as_float", "quality_of", "sample", "status_name"]
