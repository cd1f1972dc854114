"""meta-gridgate: oelint-adv clean, compatible with scarthgap and later, and every runtime
dependency of setup.cfg has its RDEPENDS entry with a version the requirement accepts."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).parents[1]
LAYER = REPO / "yocto" / "meta-gridgate"
RECIPE = LAYER / "recipes-gridgate" / "gridgate" / "gridgate_0.1.0.bb"
# PyPI name -> OE package name where the usual python3-<name> rule does not hold.
OE_NAME = {"pyserial": "python3-pyserial"}
# platform_machine values of a marker -> the OVERRIDES bitbake uses for them.
MACHINE_OVERRIDE = {"x86_64": "x86-64", "aarch64": "aarch64"}


def _requirements() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = cfg["options"]["install_requires"].strip().splitlines()
    return [Requirement(ln.strip()) for ln in lines if ln.strip()]


def _oe_name(req: Requirement) -> str:
    return OE_NAME.get(req.name, "python3-" + req.name.lower().replace("_", "-").replace(".", "-"))


def _rdepends(text: str) -> dict[str, dict[str, str | None]]:
    """Override ('' for the plain variable) -> package -> version constraint."""
    out: dict[str, dict[str, str | None]] = {}
    joined = text.replace("\\\n", " ")
    for m in re.finditer(r'^RDEPENDS:\$\{PN\}(:append:(\S+?))?\s*\+?=\s*"([^"]*)"', joined, re.M):
        override = m.group(2) or ""
        entries = out.setdefault(override, {})
        for pm in re.finditer(r"([\w.+-]+)(?:\s*\(([^)]*)\))?", m.group(3)):
            entries[pm.group(1)] = pm.group(2)
    return out


def _owned_version(pkg: str) -> Version | None:
    found = list(LAYER.glob(f"recipes-*/*/{pkg}_*.bb"))
    if not found:
        return None
    (recipe,) = found
    return Version(recipe.stem.split("_", 1)[1])


def _markers_machines(req: Requirement) -> list[str]:
    if req.marker is None:
        return [""]
    text = str(req.marker)
    m = re.search(r'platform_machine in "([^"]+)"', text)
    assert m, f"{req}: a marker this test cannot map to OVERRIDES"
    return [MACHINE_OVERRIDE[x] for x in m.group(1).split()]


@pytest.mark.parametrize("req", _requirements(), ids=str)
def test_every_runtime_dependency_has_a_compatible_rdepends(req: Requirement) -> None:
    rdepends = _rdepends(RECIPE.read_text())
    pkg = _oe_name(req)
    lower = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
    for override in _markers_machines(req):
        entries = rdepends.get(override, {})
        assert pkg in entries, (
            f"{pkg} missing from RDEPENDS:${{PN}}{':append:' + override if override else ''}"
        )
        constraint = entries[pkg]
        if lower:
            assert constraint == f">= {lower[0]}", f"{pkg}: ({constraint}) vs {req.specifier}"
    owned = _owned_version(pkg)
    if owned is not None:
        # A recipe of our own is pinned to a version the whole specifier accepts (upper bounds too).
        assert req.specifier.contains(owned, prereleases=False), f"{pkg} {owned} vs {req}"


def test_owned_recipes_are_pinned_with_checksums() -> None:
    recipes = sorted(LAYER.glob("recipes-devtools/python/*.bb"))
    assert recipes
    for r in recipes:
        text = r.read_text()
        assert re.search(r'^SRC_URI\[sha256sum\] = "[0-9a-f]{64}"$', text, re.M), r.name
        assert re.search(r"^LIC_FILES_CHKSUM = \"file://\S+;md5=[0-9a-f]{32}\"$", text, re.M)
        assert re.fullmatch(r"python3-[a-z0-9-]+_\d+(\.\d+)+", r.stem), r.name


def test_layer_conf_supports_scarthgap_and_later() -> None:
    conf = (LAYER / "conf" / "layer.conf").read_text()
    m = re.search(r'^LAYERSERIES_COMPAT_gridgate = "([^"]+)"$', conf, re.M)
    assert m
    assert {"scarthgap", "styhead", "walnascar"} <= set(m.group(1).split())
    assert re.search(r'^LAYERDEPENDS_gridgate = ".*meta-python.*"$', conf, re.M)


def test_the_recipe_installs_what_the_debian_install_installs() -> None:
    text = RECIPE.read_text()
    for unit in ("grid", "bms", "plant", "uplink"):
        assert f"gridgate-{unit}.service" in text
        assert (REPO / "systemd" / f"gridgate-{unit}.service").exists()
    assert 'CONFFILES:${PN} = "${sysconfdir}/gridgate/gridgate.toml"' in text
    assert "inherit python_setuptools_build_meta systemd useradd" in text
    assert "python3-cffi-native" in text


def test_oelint_adv_is_clean() -> None:
    exe = shutil.which("oelint-adv") or str(Path(sys.executable).parent / "oelint-adv")
    if not Path(exe).exists():
        if os.environ.get("CI"):
            pytest.fail("oelint-adv missing: add it to the test extras")
        pytest.skip("oelint-adv is not installed")
    recipes = sorted(str(p.relative_to(LAYER)) for p in LAYER.rglob("*.bb"))
    out = subprocess.run(
        [exe, "--quiet", *recipes],
        check=False,
        cwd=LAYER,
        capture_output=True,
        text=True,
        timeout=120,
    )
    findings = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    assert out.returncode == 0 and not findings, "\n".join(findings)
