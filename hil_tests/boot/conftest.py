"""Fixtures of the boot test: the cached Debian root, the wheels to install offline, the host side
(a TLS mosquitto with password authentication, the grid and plant simulators on loopback).

The boot test needs root, debootstrap and systemd-nspawn, and takes minutes: it runs only when
``GRIDGATE_BOOT=1`` (``make test-boot``, .ci/run); otherwise every test here is skipped, and with
``GRIDGATE_BOOT=1`` a missing tool is a failure, not a skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[1]
CACHE = Path(os.environ.get("GRIDGATE_BOOT_CACHE", "/var/cache/gridgate-boot"))
ENABLED = os.environ.get("GRIDGATE_BOOT") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "boot: boots a Debian root with systemd-nspawn (GRIDGATE_BOOT=1, as root)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="the boot test runs with GRIDGATE_BOOT=1 (make test-boot)")
    for item in items:
        if "boot" in item.keywords:
            item.add_marker(skip)


def timed(what: str, t0: float) -> None:
    # -s shows it; CI's log keeps it either way through the junit-free plain output
    print(f"boot: {what} in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def root_tarball() -> Path:
    tools = ("debootstrap", "systemd-nspawn", "nsenter", "tar")
    missing = [t for t in tools if not shutil.which(t)]
    if os.geteuid() != 0 or missing:
        pytest.fail(
            f"the boot test needs root and {missing or 'these tools'}: "
            "apt-get install debootstrap systemd-container"
        )
    t0 = time.monotonic()
    out = subprocess.run(
        ["sh", str(HERE / "build_root.sh"), str(CACHE)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        pytest.fail(f"build_root.sh failed:\n{out.stderr[-4000:]}")
    timed("Debian root ready", t0)
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def gridgate_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, str(REPO), "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = out.glob("gridgate-*.whl")
    return whl


@pytest.fixture(scope="session")
def wheelhouse(gridgate_wheel: Path) -> Path:
    """gridgate's dependencies as wheels, for an offline ``pip install`` inside the root.

    Cached by the dependency list and the Python version (the root's python3 is bookworm's 3.11,
    the host's venv the same minor version, so the wheels fit both)."""
    reqs = (REPO / "setup.cfg").read_text().split("install_requires =", 1)[1].split("\n\n")[0]
    key = hashlib.sha256(f"{reqs}{sys.version_info[:2]}".encode()).hexdigest()[:12]
    house = CACHE / f"wheels-{key}"
    if (house / ".complete").exists():
        return house
    t0 = time.monotonic()
    tmp = CACHE / f"wheels-{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(tmp), str(gridgate_wheel)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"pip wheel of gridgate's dependencies failed:\n{done.stderr[-4000:]}")
    for whl in tmp.glob("gridgate-*.whl"):
        whl.unlink()
    (tmp / ".complete").write_text(reqs)
    shutil.rmtree(house, ignore_errors=True)
    tmp.rename(house)
    timed("wheelhouse built", t0)
    return house


@pytest.fixture(scope="module")
def boot_workdir() -> Iterator[Path]:
    # Not under /tmp: the root is a few hundred MB and /tmp may be a small tmpfs.
    base = Path(os.environ.get("GRIDGATE_BOOT_WORKDIR", "/var/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix="gridgate-boot.", dir=base))
    yield d
    if os.environ.get("GRIDGATE_BOOT_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)
