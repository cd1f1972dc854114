"""The one door to the compiled kernels: version check, array-to-pointer and status helpers.

Every kernel wrapper passes numpy arrays through :func:`ptr` and every status through
:func:`check`, so dtype, contiguity and error handling are decided in one place. Imported once,
this module refuses a compiled module built for another version of the Python side.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gateway.core.errors import NativeError

try:
    from gateway._native import ffi, lib
except ImportError as exc:  # a missing extension must name the fix, not just the module
    raise NativeError(
        "gateway._native is not built: reinstall the gridgate package to compile native/*.c"
    ) from exc

# The GG_NATIVE_VERSION (native/gridgate.h) the wrappers in this package were written for.
EXPECTED_NATIVE_VERSION: Final = 2

# C scalar type -> the numpy dtype whose buffer it can read without conversion.
_SCALAR_DTYPES: Final = MappingProxyType(
    {
        "double": np.dtype(np.float64),
        "float": np.dtype(np.float32),
        "int8_t": np.dtype(np.int8),
        "uint8_t": np.dtype(np.uint8),
        "int16_t": np.dtype(np.int16),
        "uint16_t": np.dtype(np.uint16),
        "int32_t": np.dtype(np.int32),
        "uint32_t": np.dtype(np.uint32),
        "int64_t": np.dtype(np.int64),
        "uint64_t": np.dtype(np.uint64),
    }
)

# Negative status -> its GG_ name, read from the compiled module so new codes need no edit here.
_STATUS_NAMES: Final = MappingProxyType(
    {
        int(getattr(lib, name)): name
        for name in dir(lib)
        if name.startswith("GG_E") and isinstance(getattr(lib, name), int)
    }
)


def check_version(found: int, expected: int = EXPECTED_NATIVE_VERSION) -> None:
    """Refuse a compiled module whose API version is not the one these wrappers expect."""
    if found != expected:
        raise NativeError(
            f"gateway._native has API version {found} but the Python wrappers expect "
            f"{expected}: rebuild the package from one source tree"
        )


def check(status: int, what: str) -> int:
    """Return a non-negative status (a count for some kernels); raise on a negative one."""
    if status < 0:
        name = _STATUS_NAMES.get(status, "unknown status")
        raise NativeError(f"{what} failed: {name} ({status})")
    return status


# The array types of the scalars, parsed once: ptr runs several times per kernel call.
_ARRAY_CTYPES: Final = MappingProxyType({name: ffi.typeof(f"{name}[]") for name in _SCALAR_DTYPES})


def ptr(
    ffi_type: str,
    arr: npt.NDArray[Any],
    *,
    dtype: np.dtype[Any] | None = None,
    writable: bool = False,
) -> Any:
    """A ``ffi_type *`` over ``arr``'s buffer, for the duration of one kernel call.

    ``dtype`` defaults to the numpy twin of a C scalar type; pass it for structs. Arrays C only
    reads are made contiguous (a copy when needed); arrays C writes must already be contiguous
    and writeable, since writes into a copy would be lost. The returned cdata holds a reference
    to the array (or its copy): keep the cdata, not only the array, alive until the call returns.
    """
    expected = dtype if dtype is not None else _SCALAR_DTYPES.get(ffi_type)
    if expected is None:
        raise NativeError(f"no numpy dtype known for C type {ffi_type!r}: pass dtype=")
    # Identity first: builtin dtypes are singletons, and this runs on every kernel call.
    if arr.dtype is not expected and arr.dtype != expected:
        raise NativeError(f"{ffi_type} array must have dtype {expected}, got {arr.dtype}")
    ctype = _ARRAY_CTYPES.get(ffi_type) or f"{ffi_type}[]"
    flags = arr.flags
    if writable:
        if not (flags.c_contiguous and flags.writeable):
            raise NativeError(f"{ffi_type} output array must be C-contiguous and writeable")
        return ffi.from_buffer(ctype, arr, require_writable=True)
    if not flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return ffi.from_buffer(ctype, arr)


def assert_layout(ctype: str, dtype: np.dtype[Any]) -> None:
    """Check that a structured dtype has the C struct's field names, order, offsets and types.

    Scalar fields must match in kind too (an int64 where C has a double is refused); fields of
    other C types (nested structs, arrays) are compared by size.
    """
    if dtype.names is None or dtype.fields is None:
        raise NativeError(f"{dtype} is not a structured dtype for {ctype}")
    c_fields = [
        (name, field.offset, _SCALAR_DTYPES.get(field.type.cname, ffi.sizeof(field.type)))
        for name, field in ffi.typeof(ctype).fields
    ]
    np_fields = []
    for name in dtype.names:
        sub, offset = dtype.fields[name][:2]
        scalar = sub if sub in _SCALAR_DTYPES.values() else sub.itemsize
        np_fields.append((name, offset, scalar))
    if ffi.sizeof(ctype) != dtype.itemsize or c_fields != np_fields:
        raise NativeError(
            f"layout of {ctype} (size {ffi.sizeof(ctype)}, fields {c_fields}) does not match "
            f"numpy dtype (size {dtype.itemsize}, fields {np_fields})"
        )


check_version(int(lib.gg_native_version()))

__all__ = [
    "EXPECTED_NATIVE_VERSION",
    "assert_layout",
    "check",
    "check_version",
    "ffi",
    "lib",
    "ptr",
]
