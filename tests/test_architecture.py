"""The layout's contracts (tools/check_architecture.py, run by `make lint`): the shipped tree keeps
them, and each kind of breach is caught when someone writes it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "check_architecture", REPO / "tools/check_architecture.py"
)
assert _spec is not None and _spec.loader is not None
arch = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = arch  # dataclasses look their module up there
_spec.loader.exec_module(arch)


def test_the_shipped_tree_keeps_every_contract() -> None:
    assert [str(b) for b in arch.check_tree(REPO)] == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for pkg in ("gateway", "drivers"):
        (tmp_path / pkg).mkdir(exist_ok=True)
    return tmp_path


@pytest.mark.parametrize(
    ("file", "source", "reason"),
    [
        (
            "gateway/grid/x.py",
            "from gateway.bms.monitor import StringMonitor\n",
            "must not import gateway.bms",
        ),
        ("gateway/core/x.py", "import gateway.grid.config\n", "must not import gateway.grid"),
        (
            "gateway/plant/x.py",
            "from gateway.sim.plant import TAGS\n",
            "must not import gateway.sim",
        ),
        (
            "gateway/config/x.py",
            "from gateway.spool.store import Spool\n",
            "must not import gateway.spool",
        ),
        (
            "drivers/modbus/x.py",
            "from gateway.uplink import mqtt\n",
            "must not import gateway.uplink",
        ),
        ("gateway/spool/x.py", "from gateway import grid\n", "must not import gateway.grid"),
        ("gateway/grid/x.py", "from gateway._native import lib\n", "loads gateway._native"),
        ("gateway/grid/x.py", "def f():\n    import json\n", "without a '# start-up:' reason"),
        ("gateway/grid/x.py", "def f():\n" + "    x = 1\n" * 80, "f is 81 lines"),
        ("gateway/grid/x.py", "x = 1\n" * 401, "401 lines"),
    ],
)
def test_each_kind_of_breach_is_reported(
    tmp_path: Path, file: str, source: str, reason: str
) -> None:
    root = _tree(tmp_path, {file: source})
    breaches = [str(b) for b in arch.check_tree(root)]
    assert len(breaches) == 1 and reason in breaches[0] and breaches[0].startswith(file)


def test_what_the_layout_allows_passes(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "gateway/grid/x.py": (
                "from drivers.modbus.plan import compile_plan\n"
                "from gateway.config.issues import IssueSink\n"
                "from gateway.grid.summarise import Summariser\n"
                "from gateway.native.stats import WindowStats\n"
                "from gateway.spool.outbox import Outbox\n"
                "def f():\n"
                "    # start-up: numpy only when the estimator is configured\n"
                "    import numpy\n"
                "    from gateway.grid import hints\n"
            ),
            "gateway/sim/feeder.py": "from gateway.grid.solar import clear_sky_ghi\n"
            + "x = 1\n" * 500,
            "gateway/native/ffi.py": "from gateway._native import ffi, lib\n",
            "gateway/core/runtime.py": (
                "from gateway.config.schema import Config\nfrom gateway.spool.store import Spool\n"
            ),
            "gateway/grid/y.py": "# long: a table of constants\ndef f():\n" + "    x = 1\n" * 90,
        },
    )
    assert [str(b) for b in arch.check_tree(root)] == []


def test_make_lint_runs_the_check_and_fails_on_a_breach(tmp_path: Path) -> None:
    bad = _tree(tmp_path, {"gateway/core/x.py": "from gateway.plant import daemon\n"})
    out = subprocess.run(
        [sys.executable, str(REPO / "tools/check_architecture.py"), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert (
        "gateway/core/x.py:1: gateway.core.x (gateway.core) must not import gateway.plant"
        in out.stdout
    )
    assert (
        "check_architecture.py"
        in (REPO / "Makefile").read_text().split("lint:")[1].split("\n\n")[0]
    )
