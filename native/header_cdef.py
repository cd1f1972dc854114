"""The cffi cdef of each kernel, generated from its marked section of native/gridgate.h.

A section runs from a line ``/* [cdef NAME] */`` to the next ``/* [end cdef] */``; everything of
the header outside the sections (the include guard, GG_NATIVE_VERSION, the inline helpers that
cells.c and balance.c share) is internal. cffi takes C declarations but not the preprocessor: the
generator drops comments and includes, joins continued lines, and writes every ``#define`` as the
integer it evaluates to (``(1u << 4)`` as ``16``; a macro may use any macro defined before it in
the header). Used by native/build_native.py (the build, which also refreshes native/cdef/) and by
tests/test_native_header.py; only the standard library, so that either can load it by path.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = HERE / "gridgate.h"
CDEF_DIR = HERE / "cdef"
BANNER = "/* Generated from native/gridgate.h by the build: edit the header, not this file. */"

_SECTION = re.compile(r"^/\* \[cdef (\w+)\] \*/$(.*?)^/\* \[end cdef\] \*/$", re.M | re.S)
_MARKER = re.compile(r"/\* \[(?:cdef \w+|end cdef)\] \*/")
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)\s+(.+?)\s*$")
_INT_SUFFIX = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b")

_BINARY: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
}
_UNARY: dict[type[ast.unaryop], Callable[[int], int]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
}


class HeaderError(ValueError):
    """The header cannot be turned into cdefs (an unknown macro, a malformed section)."""


def _uncomment(text: str) -> str:
    return _COMMENT.sub(" ", text).replace("\\\n", " ")


def _evaluate(name: str, expr: str, known: dict[str, int]) -> int:
    """The integer value of a macro's body: literals, earlier macros and integer operators."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name) and node.id in known:
            return known[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        raise HeaderError(f"#define {name}: {ast.unparse(node)!r} is not an integer expression")

    try:
        tree = ast.parse(_INT_SUFFIX.sub(r"\1", expr), mode="eval")
    except SyntaxError as exc:
        raise HeaderError(f"#define {name}: cannot parse {expr!r}") from exc
    return walk(tree.body)


def macros(header: str) -> dict[str, int]:
    """Every integer #define of the header with its value, in order (guards without a body and
    macros that are not integer expressions are left out)."""
    known: dict[str, int] = {}
    for line in _uncomment(header).splitlines():
        m = _DEFINE.match(line)
        if m is None:
            continue
        try:
            known[m.group(1)] = _evaluate(m.group(1), m.group(2), known)
        except HeaderError:
            continue
    return known


def cdef_sections(header: str) -> dict[str, str]:
    """Kernel name -> the text of native/cdef/<name>.h for that section of the header."""
    known = macros(header)
    sections: dict[str, str] = {}
    for m in _SECTION.finditer(header):
        name, body = m.group(1), m.group(2)
        if name in sections:
            raise HeaderError(f"two [cdef {name}] sections")
        if _MARKER.search(body):
            raise HeaderError(f"[cdef {name}] is not closed before the next marker")
        lines = [BANNER]
        for raw in _uncomment(body).splitlines():
            line = raw.rstrip()
            define = _DEFINE.match(line)
            if define is not None:
                macro = define.group(1)
                if macro not in known:
                    raise HeaderError(f"#define {macro} in [cdef {name}] is not an integer")
                lines.append(f"#define {macro} {known[macro]}")
            elif line.strip() and not line.lstrip().startswith("#include"):
                lines.append(line)
        sections[name] = "\n".join(lines) + "\n"
    if len(_MARKER.findall(header)) != 2 * len(sections):
        raise HeaderError("a [cdef] marker without its pair")
    if not sections:
        raise HeaderError("no [cdef NAME] section in the header")
    return sections


def write_cdefs(sections: dict[str, str], directory: Path = CDEF_DIR) -> list[Path]:
    """Writes each section to directory/<name>.h where it differs, removes .h files that are no
    section's; returns the paths it changed."""
    changed: list[Path] = []
    for name, text in sections.items():
        path = directory / f"{name}.h"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    for path in directory.glob("*.h"):
        if path.stem not in sections:
            path.unlink()
            changed.append(path)
    return changed
