"""The layout's contracts, checked on the source (run by ``make lint``; exit 1 on any breach).

1. Dependencies point one way (see README "Layout"): core < config < spool, native < drivers <
   domains (grid, bms, plant, uplink) < cli, demo. Domains do not import each other; nothing in
   production imports the simulators; only the native bindings touch the compiled module.
2. No import inside a function unless the line above says why, starting ``# start-up:`` (a heavy
   module deferred so a command or a daemon that does not need it starts faster and smaller).
3. No module over 400 lines outside the simulators; no function over 80 lines unless the line
   above the ``def`` (or its first decorator) gives the reason, starting ``# long:``.

Standard library only, so it runs before anything is installed. Type-only imports (under
``if TYPE_CHECKING:``) count as dependencies too: a type pointing the wrong way is a design smell
the first refactor turns into a cycle.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DOMAINS = ("grid", "bms", "plant", "uplink")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

# Who may import what, by the importer's layer. A layer always may import itself.
_SHARED = ("gateway.core", "gateway.config", "gateway.spool", "gateway.native", "drivers")
ALLOWED: dict[str, tuple[str, ...]] = {
    "gateway.core": (),
    # The process shell: loads the config, opens the spool, builds daemons by registered name.
    "gateway.core.runtime": ("gateway.core", "gateway.config", "gateway.spool"),
    "gateway.config": ("gateway.core",),
    "gateway.spool": ("gateway.core",),
    "gateway.native": ("gateway.core", "gateway.config"),
    "drivers": ("gateway.core", "gateway.config", "gateway.native"),
    **{f"gateway.{d}": _SHARED for d in DOMAINS},
    # Demo, tests and benches only: the simulators may use anything below them.
    "gateway.sim": (*_SHARED, *(f"gateway.{d}" for d in DOMAINS)),
    "gateway.demo": (*_SHARED, "gateway.sim"),
    "gateway.cli": (
        *_SHARED,
        *(f"gateway.{d}" for d in DOMAINS),
        "gateway.demo",
        "gateway.reload_cli",
        "gateway.status_cli",
    ),
    "gateway.reload_cli": ("gateway.core", "gateway.config"),
    "gateway.status_cli": ("gateway.core", "gateway.config", "gateway.spool", "gateway.watch"),
    "gateway.watch": (),
    "gateway": (),
}
# Importable from anywhere: the package root's version string.
ANYWHERE = ("gateway._version", "gateway.__version__")
COMPILED = "gateway._native"
COMPILED_USERS = ("gateway.native.ffi",)


@dataclass(frozen=True)
class Breach:
    file: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def _module_name(root: Path, file: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _layer(module: str) -> str | None:
    """The most specific ALLOWED key that contains ``module``."""
    best = None
    for key in ALLOWED:
        if _within(module, key) and (best is None or len(key) > len(best)):
            best = key
    return best


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_pkg: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative: resolve against the importing module's package
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    # "from gateway.grid import config" imports gateway.grid.config: check the longer name too.
    return [prefix] + [f"{prefix}.{a.name}" for a in node.names if a.name != "*"]


def _dependency_breach(module: str, target: str) -> str | None:
    if not _within(target, "gateway") and not _within(target, "drivers"):
        return None  # standard library or a third-party package
    if target == COMPILED or target.startswith(COMPILED + "."):
        return None if module in COMPILED_USERS else f"only {COMPILED_USERS[0]} loads {COMPILED}"
    if any(_within(target, a) for a in ANYWHERE) or target == "gateway":
        return None
    layer = _layer(module)
    if layer is None:
        return f"{module} belongs to no layer of the architecture check"
    if _within(target, layer) or any(_within(target, a) for a in ALLOWED[layer]):
        return None
    return f"{module} ({layer}) must not import {target}"


def _has_reason(lines: list[str], lineno: int, tag: str) -> bool:
    """A comment block right above ``lineno`` (past a run of imports it covers) with the tag."""
    i = lineno - 2
    while i >= 0 and lines[i].strip().startswith(("from ", "import ")):
        i -= 1
    while i >= 0 and lines[i].strip().startswith("#"):
        text = lines[i].strip()
        if text.startswith(f"# {tag}:") and len(text) > len(f"# {tag}:") + 3:
            return True
        i -= 1
    return False


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def check_file(root: Path, file: Path) -> list[Breach]:
    text = file.read_text()
    lines = text.splitlines()
    tree = ast.parse(text, str(file))
    module = _module_name(root, file)
    is_pkg = file.name == "__init__.py"
    rel = file.relative_to(root)
    found: list[Breach] = []
    inside: set[int] = set()
    for fn in _functions(tree):
        for node in ast.walk(fn):
            if isinstance(node, ast.Import | ast.ImportFrom):
                inside.add(id(node))
        first = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
        length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
        simulator = _within(module, "gateway.sim")
        if length > MAX_FUNCTION_LINES and not simulator and not _has_reason(lines, first, "long"):
            found.append(
                Breach(rel, fn.lineno, f"{fn.name} is {length} lines (max {MAX_FUNCTION_LINES})")
            )
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if id(node) in inside and not _has_reason(lines, node.lineno, "start-up"):
            found.append(
                Breach(rel, node.lineno, "import inside a function without a '# start-up:' reason")
            )
        for target in _imported(node, module, is_pkg):
            reason = _dependency_breach(module, target)
            if reason:
                found.append(Breach(rel, node.lineno, reason))
                break
    if len(lines) > MAX_MODULE_LINES and not _within(module, "gateway.sim"):
        found.append(Breach(rel, 1, f"{len(lines)} lines (max {MAX_MODULE_LINES})"))
    return found


def check_tree(root: Path) -> list[Breach]:
    breaches: list[Breach] = []
    for package in ("gateway", "drivers"):
        for file in sorted((root / package).rglob("*.py")):
            breaches.extend(check_file(root, file))
    return breaches


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    breaches = check_tree(root)
    for b in breaches:
        print(b)
    if breaches:
        print(
            f"architecture: {len(breaches)} breach(es) of the layout's contracts", file=sys.stderr
        )
        return 1
    print("architecture: contracts kept")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
