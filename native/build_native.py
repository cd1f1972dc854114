"""cffi build script (out-of-line API mode) for gateway._native.

Every ``native/*.c`` is compiled into one extension. Each kernel's cdef is generated from its
marked section of ``native/gridgate.h`` (native/header_cdef.py), the one source of the API; the
build also refreshes the copies in ``native/cdef/`` (read by people and tests, not by the build),
so a header edit followed by ``make native`` shows up in ``git diff``.

A C compile error fails the package build: there is no pure-Python fallback on purpose, a gateway
must not silently run a hundred times slower.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

# By path: cffi runs this file with exec(), and native/ is not a package.
_spec = importlib.util.spec_from_file_location("header_cdef", HERE / "header_cdef.py")
assert _spec is not None and _spec.loader is not None
header_cdef = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(header_cdef)

CDEFS = header_cdef.cdef_sections(header_cdef.HEADER.read_text())
with contextlib.suppress(OSError):  # a read-only source tree: the build needs only CDEFS
    header_cdef.write_cdefs(CDEFS)

ffibuilder = FFI()
for _name in sorted(CDEFS):
    ffibuilder.cdef(CDEFS[_name])

ffibuilder.set_source(
    "gateway._native",
    '#include "gridgate.h"',
    sources=[str(p.relative_to(HERE.parent)) for p in sorted(HERE.glob("*.c"))],
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    extra_compile_args=["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fno-math-errno"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
