"""Config code depends one way: gateway.config on gateway.core only, drivers on gateway.core,
gateway.config and gateway.native only, and production config never on the simulators."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m.split(".")[0] in ("gateway", "drivers")}


def _outside(modules: set[str], allowed: tuple[str, ...]) -> set[str]:
    return {m for m in modules if not any(m == a or m.startswith(a + ".") for a in allowed)}


@pytest.mark.parametrize("path", sorted((ROOT / "gateway" / "config").glob("*.py")), ids=_rel)
def test_the_config_package_imports_only_core(path: Path) -> None:
    assert _outside(_imported(path), ("gateway.config", "gateway.core")) == set()


@pytest.mark.parametrize("path", sorted((ROOT / "drivers").rglob("*.py")), ids=_rel)
def test_drivers_import_only_core_config_native_and_drivers(path: Path) -> None:
    allowed = ("drivers", "gateway.core", "gateway.config", "gateway.native")
    assert _outside(_imported(path), allowed) == set()


_DOMAIN_CONFIGS = sorted(
    p for d in ("grid", "bms", "plant", "uplink") for p in (ROOT / "gateway" / d).glob("*config.py")
)


@pytest.mark.parametrize("path", _DOMAIN_CONFIGS, ids=_rel)
def test_domain_config_imports_config_core_native_drivers_and_its_own_domain(path: Path) -> None:
    own = f"gateway.{path.parent.name}"
    allowed = ("gateway.config", "gateway.core", "gateway.native", "drivers", own)
    assert _outside(_imported(path), allowed) == set()


def test_the_plant_config_does_not_load_the_simulator() -> None:
    probe = (
        "import json, sys\nimport gateway.plant.config\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('gateway.sim'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
