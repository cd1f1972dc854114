"""native/gridgate.h is the one source of the C API: each kernel's cdef is generated from its
marked section (native/header_cdef.py), the copies in native/cdef/ must be what the generator
writes, every public name must be in a section, and the compiled module must carry them. Also the
size rule of the C sources: no function body over 120 lines without a comment saying why."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from gateway._native import ffi, lib

REPO = Path(__file__).resolve().parent.parent
NATIVE = REPO / "native"

# Outside every [cdef] section on purpose: the include guard, the version the Python side checks
# through gg_native_version(), and the inline helpers and plan function cells.c and balance.c share.
INTERNAL = {"GRIDGATE_H", "GG_NATIVE_VERSION", "gg_cell_good", "gg_cell_interlock", "gg_cells_plan"}
MAX_FUNCTION_LINES = 120
LONG_FUNCTION_REASON = "over 120 lines because"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("header_cdef", NATIVE / "header_cdef.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


header_cdef = _load_generator()
HEADER = (NATIVE / "gridgate.h").read_text()
SECTIONS = header_cdef.cdef_sections(HEADER)


def _uncommented(text: str) -> str:
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


def _public_names(c_text: str) -> set[str]:
    """Macros, typedef names and function names a C text declares."""
    text = _uncommented(c_text)
    names = set(re.findall(r"^\s*#\s*define\s+(\w+)", text, flags=re.M))
    names |= set(re.findall(r"}\s*(\w+)\s*;", text))
    names |= set(re.findall(r"\b(gg_\w+)\s*\(", text))
    return names


def test_each_cdef_file_is_its_generated_section() -> None:
    on_disk = {p.stem: p.read_text() for p in (NATIVE / "cdef").glob("*.h")}
    assert sorted(on_disk) == sorted(SECTIONS), "native/cdef/ and the [cdef] sections differ"
    for name, text in SECTIONS.items():
        assert on_disk[name] == text, (
            f"native/cdef/{name}.h is not its section of gridgate.h: edit the header, not the "
            "cdef, and run `make native` (native/build_native.py regenerates native/cdef/)"
        )


def test_every_public_name_of_the_header_is_in_a_cdef() -> None:
    in_sections = set().union(*(_public_names(text) for text in SECTIONS.values()))
    outside = _public_names(header_cdef._SECTION.sub("", HEADER))
    assert outside - in_sections - INTERNAL == set()
    # Every function the C sources export (not static) is declared in a section or internal.
    exported: set[str] = set()
    for path in NATIVE.glob("*.c"):
        found = re.findall(r"^(?:int|void|double|size_t)\s+(gg_\w+)\s*\(", path.read_text(), re.M)
        exported |= set(found)
    assert exported, "no exported function found: the pattern above went stale"
    assert exported - in_sections - INTERNAL == set()


def test_the_compiled_module_carries_every_cdef_name() -> None:
    """A stale build (header changed, `make native` not run) fails here."""
    values = header_cdef.macros(HEADER)
    for name, text in SECTIONS.items():
        body = _uncommented(text)
        for macro in re.findall(r"^#define (\w+) ", body, flags=re.M):
            assert getattr(lib, macro) == values[macro], (name, macro)
        for func in re.findall(r"\b(gg_\w+)\s*\(", body):
            assert callable(getattr(lib, func)), (name, func)
        for typedef in re.findall(r"}\s*(\w+)\s*;", body):
            assert ffi.sizeof(typedef) > 0, (name, typedef)


def test_macros_become_integer_literals() -> None:
    values = header_cdef.macros(HEADER)
    assert values["GG_EINVAL"] == -1
    assert values["GG_CELL_DEVIATION"] == 16
    assert values["GG_CELL_FAULTS"] == 0x43F  # OV UV OT UT DEVIATION IMPLAUSIBLE STALE
    assert "#define GG_CELL_FAULTS 1087\n" in SECTIONS["cells"]
    assert "GG_NATIVE_VERSION" not in "".join(SECTIONS.values())


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("/* [cdef a] */\nint gg_a(void);\n", "without its pair"),
        ("/* [cdef a] */\n/* [cdef b] */\n/* [end cdef] */\n", "not closed"),
        ("/* [cdef a] */\n#define GG_X 1.5\n/* [end cdef] */\n", "not an integer"),
        ("/* [cdef a] */\n#define GG_X (GG_NOPE | 1)\n/* [end cdef] */\n", "not an integer"),
        ("/* [cdef a] */\n/* [end cdef] */\n/* [cdef a] */\n/* [end cdef] */\n", "two"),
        ("int gg_a(void);\n", "no \\[cdef NAME\\] section"),
    ],
)
def test_the_generator_refuses_a_malformed_header(header: str, message: str) -> None:
    with pytest.raises(header_cdef.HeaderError, match=message):
        header_cdef.cdef_sections(header)


def test_a_header_change_changes_the_generated_cdef() -> None:
    drifted = HEADER.replace("    double last_ts;\n", "    double last_ts;\n    double extra;\n", 1)
    assert drifted != HEADER
    assert header_cdef.cdef_sections(drifted)["stats"] != SECTIONS["stats"]


def _function_lengths(text: str) -> list[tuple[str, int, str]]:
    """(signature line, body lines, line above the signature) of every function whose braces
    stand alone in column 0, the style of native/."""
    lines = text.splitlines()
    out = []
    start = None
    for i, line in enumerate(lines):
        if line == "{":
            start = i
        elif line == "}" and start is not None:
            sig = start - 1
            while sig > 0 and "(" not in lines[sig]:
                sig -= 1
            while (
                sig > 0
                and lines[sig - 1].strip()
                and not lines[sig - 1].rstrip().endswith(("*/", ";", "}"))
            ):
                sig -= 1  # a signature wrapped over several lines
            out.append((lines[sig], i - start + 1, lines[sig - 1] if sig > 0 else ""))
            start = None
    return out


@pytest.mark.parametrize("path", sorted(NATIVE.glob("*.[ch]")), ids=lambda p: p.name)
def test_no_c_function_over_120_lines(path: Path) -> None:
    text = path.read_text()
    found = _function_lengths(text)
    assert found or "\n{\n" not in text, "no function found: the pattern above went stale"
    too_long = [
        (sig, n)
        for sig, n, above in found
        if n > MAX_FUNCTION_LINES and LONG_FUNCTION_REASON not in above
    ]
    assert too_long == []


def test_the_length_check_sees_a_long_function() -> None:
    body = "\n".join(f"    x += {k};" for k in range(MAX_FUNCTION_LINES))
    found = _function_lengths(f"/* short */\nstatic int f(int x)\n{{\n{body}\n}}\n")
    assert found == [("static int f(int x)", MAX_FUNCTION_LINES + 2, "/* short */")]
