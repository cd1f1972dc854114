"""install/install.sh into a temporary root (DESTDIR): every file, owner and mode; the staged venv
carries no staging path; sysusers/tmpfiles and ``systemd-analyze verify`` on the installed units;
uninstall removes the state unless asked to keep it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
INSTALL = REPO / "install" / "install.sh"
UNITS = "usr/local/lib/systemd/system"
DAEMONS = ("grid", "bms", "plant", "uplink")

# Everything outside the venv: path -> (mode, kind). "l" is a symlink (mode unused).
EXPECTED: dict[str, tuple[int, str]] = {
    "etc": (0o755, "d"),
    "etc/gridgate": (0o755, "d"),
    "etc/gridgate/conf.d": (0o755, "d"),
    "etc/gridgate/gridgate.toml": (0o644, "f"),
    "etc/systemd": (0o755, "d"),
    "etc/systemd/system": (0o755, "d"),
    "etc/systemd/system/multi-user.target.wants": (0o755, "d"),
    "etc/systemd/system/multi-user.target.wants/gridgate.target": (0, "l"),
    "etc/systemd/system/gridgate.target.wants": (0o755, "d"),
    "etc/systemd/system/gridgate.target.wants/gridgate-grid.service": (0, "l"),
    "etc/systemd/system/gridgate.target.wants/gridgate-uplink.service": (0, "l"),
    "opt": (0o755, "d"),
    "usr": (0o755, "d"),
    "usr/local": (0o755, "d"),
    "usr/local/bin": (0o755, "d"),
    "usr/local/bin/gridgate": (0, "l"),
    "usr/local/lib": (0o755, "d"),
    "usr/local/lib/systemd": (0o755, "d"),
    UNITS: (0o755, "d"),
    f"{UNITS}/gridgate.target": (0o644, "f"),
    **{f"{UNITS}/gridgate-{d}.service": (0o644, "f") for d in DAEMONS},
    "usr/local/lib/sysusers.d": (0o755, "d"),
    "usr/local/lib/sysusers.d/gridgate.conf": (0o644, "f"),
    "usr/local/lib/tmpfiles.d": (0o755, "d"),
    "usr/local/lib/tmpfiles.d/gridgate.conf": (0o644, "f"),
    "usr/local/share": (0o755, "d"),
    "usr/local/share/doc": (0o755, "d"),
    "usr/local/share/doc/gridgate": (0o755, "d"),
    "usr/local/share/doc/gridgate/technician.md": (0o644, "f"),
    "usr/local/share/doc/gridgate/gridgate.toml.example": (0o644, "f"),
}
LINKS = {
    "usr/local/bin/gridgate": "/opt/gridgate/bin/gridgate",
    "etc/systemd/system/multi-user.target.wants/gridgate.target": f"/{UNITS}/gridgate.target",
    "etc/systemd/system/gridgate.target.wants/gridgate-grid.service": (
        f"/{UNITS}/gridgate-grid.service"
    ),
    "etc/systemd/system/gridgate.target.wants/gridgate-uplink.service": (
        f"/{UNITS}/gridgate-uplink.service"
    ),
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(REPO),
            "-w",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (whl,) = out.glob("gridgate-*.whl")
    return whl


def _install(root: Path, wheel: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # --no-deps --no-index: the test checks the layout offline; dependencies resolve from PyPI
    # on a real gateway (and are what the Yocto layer pins).
    return subprocess.run(
        [
            "sh",
            str(INSTALL),
            "--source",
            str(wheel),
            "--python",
            sys.executable,
            "--pip-args",
            "--no-deps --no-index",
            *extra,
        ],
        env=dict(os.environ, DESTDIR=str(root)),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Iterator[Path]:
    r = tmp_path_factory.mktemp("destdir")
    _install(r, wheel, "--enable", "grid,uplink")
    yield r


def _walk(root: Path) -> dict[str, os.stat_result]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel.startswith("opt/gridgate"):
                continue
            found[rel] = p.lstat()
    return found


def test_every_file_owner_and_mode(root: Path) -> None:
    found = _walk(root)
    assert sorted(found) == sorted(EXPECTED)
    for rel, (mode, kind) in EXPECTED.items():
        st = found[rel]
        assert st.st_uid == os.getuid() and st.st_gid == os.getgid(), rel
        if kind == "l":
            assert stat.S_ISLNK(st.st_mode), rel
            assert os.readlink(root / rel) == LINKS[rel]
        else:
            assert (stat.S_ISDIR if kind == "d" else stat.S_ISREG)(st.st_mode), rel
            assert stat.S_IMODE(st.st_mode) == mode, f"{rel}: {oct(stat.S_IMODE(st.st_mode))}"
    for d in DAEMONS:
        assert (root / UNITS / f"gridgate-{d}.service").read_bytes() == (
            REPO / "systemd" / f"gridgate-{d}.service"
        ).read_bytes()
    assert (root / "etc/gridgate/gridgate.toml").read_bytes() == (
        REPO / "examples/gridgate.toml"
    ).read_bytes()


def test_venv_is_relocated_to_opt(root: Path) -> None:
    venv = root / "opt/gridgate"
    assert stat.S_IMODE(venv.stat().st_mode) == 0o755
    exe = venv / "bin/gridgate"
    assert stat.S_IMODE(exe.stat().st_mode) == 0o755
    assert exe.read_text().splitlines()[0] == "#!/opt/gridgate/bin/python"
    staged = str(root).encode()
    leaks = []
    for dirpath, _dirs, files in os.walk(venv):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink():
                continue
            st = p.stat()
            assert st.st_uid == os.getuid(), p
            assert not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), p
            if staged in p.read_bytes():
                leaks.append(str(p.relative_to(root)))
    assert not leaks, f"files naming the staging root: {leaks[:10]}"
    assert list(venv.glob("lib/python3.*/site-packages/gateway/_native*.so"))


def test_sysusers_and_tmpfiles_in_the_staged_root(root: Path, tmp_path: Path) -> None:
    r = tmp_path / "r"
    shutil.copytree(root, r, symlinks=True, ignore=shutil.ignore_patterns("gridgate", "opt"))
    subprocess.run(
        # No file argument: the root's own search path must find /usr/local/lib/sysusers.d.
        ["systemd-sysusers", f"--root={r}"],
        check=True,
        capture_output=True,
    )
    pw = {ln.split(":")[0]: ln.split(":") for ln in (r / "etc/passwd").read_text().splitlines()}
    user = pw["gridgate"]
    assert user[5:] == ["/var/lib/gridgate", "/usr/sbin/nologin"]
    assert 0 < int(user[2]) < 1000  # a system uid
    subprocess.run(
        ["systemd-tmpfiles", f"--root={r}", "--create"],
        check=True,
        capture_output=True,
    )
    for path, mode in (("run/gridgate", 0o750), ("var/lib/gridgate", 0o700)):
        st = (r / path).stat()
        assert stat.S_IMODE(st.st_mode) == mode, path
        assert st.st_uid == int(user[2]), path


def test_systemd_analyze_verify_passes_on_the_installed_units(root: Path, tmp_path: Path) -> None:
    r = tmp_path / "r"
    shutil.copytree(root, r, symlinks=True)
    # What a Debian root has and the installer rightly does not install: systemd's own units
    # (sysinit.target, network-online.target ...) and /bin/kill. Copied from this machine.
    shutil.copytree("/usr/lib/systemd/system", r / "usr/lib/systemd/system", symlinks=True)
    (r / "bin").mkdir()
    shutil.copy2(shutil.which("kill") or "/bin/kill", r / "bin/kill")
    units = [f"/{UNITS}/gridgate-{d}.service" for d in DAEMONS] + [f"/{UNITS}/gridgate.target"]
    out = subprocess.run(
        ["systemd-analyze", "verify", f"--root={r}", "--man=no", *units],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "gridgate" not in out.stderr, out.stderr


def test_verify_catches_a_missing_executable(root: Path, tmp_path: Path) -> None:
    # Without the venv, ExecStart= points nowhere and verify says so: the check above can fail.
    r = tmp_path / "r"
    shutil.copytree(root, r, symlinks=True, ignore=shutil.ignore_patterns("opt"))
    shutil.copytree("/usr/lib/systemd/system", r / "usr/lib/systemd/system", symlinks=True)
    out = subprocess.run(
        ["systemd-analyze", "verify", f"--root={r}", "--man=no", f"/{UNITS}/gridgate-grid.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0
    assert "/opt/gridgate/bin/gridgate" in out.stderr


def test_reinstall_keeps_the_config_and_uninstall(wheel: Path, tmp_path: Path) -> None:
    r = tmp_path / "r"
    _install(r, wheel)
    (r / "etc/gridgate/gridgate.toml").write_text("# edited on site\n")
    _install(r, wheel)
    assert (r / "etc/gridgate/gridgate.toml").read_text() == "# edited on site\n"
    spool = r / "var/lib/gridgate/spool.sqlite"
    spool.parent.mkdir(parents=True)
    spool.write_bytes(b"rows")
    uninstall = ["sh", str(INSTALL), "--uninstall"]
    env = dict(os.environ, DESTDIR=str(r))
    subprocess.run([*uninstall, "--keep-state"], env=env, check=True, capture_output=True)
    assert spool.read_bytes() == b"rows"
    assert not (r / "opt/gridgate").exists() and not (r / UNITS / "gridgate.target").exists()
    assert (r / "etc/gridgate/gridgate.toml").exists()
    subprocess.run(uninstall, env=env, check=True, capture_output=True)
    assert not spool.parent.exists()
    assert (r / "etc/gridgate/gridgate.toml").exists()
    subprocess.run([*uninstall, "--purge"], env=env, check=True, capture_output=True)
    assert not (r / "etc/gridgate").exists()
    left = sorted(str(p.relative_to(r)) for p in r.rglob("*") if not p.is_dir())
    assert left == [], left
