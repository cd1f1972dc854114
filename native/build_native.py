"""cffi build script (out-of-line API mode) for gateway._native.

Every ``native/*.c`` is compiled into one extension; every ``native/cdef/*.h`` is one kernel's cdef.
A C compile error fails the package build: there is no pure-Python fallback on purpose, a gateway
must not silently run a hundred times slower.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

ffibuilder = FFI()
for cdef in sorted((HERE / "cdef").glob("*.h")):
    ffibuilder.cdef(cdef.read_text())

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
