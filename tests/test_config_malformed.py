"""Malformed config input: each gives exit 78 with the file and the key, never a traceback or rc 1.

Each test here is a finding of issue 11 ("bad config input"); every one failed (a traceback, rc 1,
or a silent OK) before its fix. The property test in ``test_config_fuzz.py`` looks for more.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

BASE = '[gateway]\nsite = "s"\nid = "g"\nstate_dir = "/tmp/gridgate-malformed"\n'
METER = '[grid.meters.head]\nprofile = "eastron_sdm630"\nhost = "127.0.0.1"\n'


def check(cfg: Path, capsys: pytest.CaptureFixture[str], env: dict[str, str] | None = None) -> str:
    """Run ``gridgate -c CFG check-config``; assert exit 78 and only ``FILE: ...`` lines."""
    old = dict(os.environ)
    os.environ.pop("CREDENTIALS_DIRECTORY", None)
    os.environ.update(env or {})
    try:
        rc = main(["-c", str(cfg), "check-config"])
    finally:
        os.environ.clear()
        os.environ.update(old)
    err = capsys.readouterr().err
    assert rc == 78, err
    lines = err.splitlines()
    assert lines[-1].endswith("problem(s) found")
    for line in lines[:-1]:
        assert line.startswith("/"), line  # FILE: [key.path: ]reason
        assert ": " in line, line
    return err


def uplink_with_password(tmp_path: Path, content: bytes) -> Path:
    pw = tmp_path / "pw"
    pw.write_bytes(content)
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + f'[uplink]\nhost = "h"\nusername = "u"\npassword_file = "{pw}"\n')
    return cfg


def test_password_file_with_a_nul_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = uplink_with_password(tmp_path, b"pass\x00word\n")
    err = check(cfg, capsys)
    assert f"{cfg}: uplink.password_file: secret file {tmp_path}/pw contains a NUL byte" in err


def test_password_file_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = uplink_with_password(tmp_path, b"p\xff\xfe\n")
    err = check(cfg, capsys)
    assert f"{cfg}: uplink.password_file: secret file {tmp_path}/pw is not UTF-8 text" in err


def test_password_file_name_with_a_nul(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + '[uplink]\nhost = "h"\nusername = "u"\npassword_file = "/a\\u0000b"\n')
    err = check(cfg, capsys)
    assert f"{cfg}: uplink.password_file: must not contain control characters" in err


@pytest.mark.parametrize("name", ["../../etc/shadow", "a/b", "", "."])
def test_credential_name_is_a_plain_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + f'[uplink]\nhost = "h"\nusername = "u"\npassword_credential = "{name}"\n')
    err = check(cfg, capsys, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert f"{cfg}: uplink.password_credential: must be a credential name" in err


def test_empty_password_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # "" used to mean "no password at all", silently.
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + '[uplink]\nhost = "h"\nusername = "u"\npassword_file = ""\n')
    err = check(cfg, capsys)
    assert f"{cfg}: uplink.password_file: must not be empty" in err


@pytest.mark.parametrize("key", ["state_dir", "runtime_dir"])
def test_nul_in_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str) -> None:
    cfg = tmp_path / "gridgate.toml"
    text = BASE.replace('state_dir = "/tmp/gridgate-malformed"\n', "")
    cfg.write_text(text + f'{key} = "/var/lib/a\\u0000b"\n')
    err = check(cfg, capsys)
    assert f"{cfg}: gateway.{key}: must not contain control characters" in err


def test_nul_in_the_spool_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + '[spool]\nfile = "spool\\u0000.sqlite"\n')
    err = check(cfg, capsys)
    assert f"{cfg}: spool.file: must not contain control characters" in err


def test_array_nested_5000_deep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + "x = " + "[" * 5000 + "]" * 5000 + "\n")
    err = check(cfg, capsys)
    assert f"{cfg}: nested too deeply" in err


def test_inline_tables_nested_deep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Parses (under Python's recursion limit) but is deeper than any config: refused by key.
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + "[grid]\nx = " + "{a = " * 60 + "1" + "}" * 60 + "\n")
    err = check(cfg, capsys)
    assert f"{cfg}: grid.x.a.a.a" in err
    assert "nested more than 32 levels deep" in err


def test_toml_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_bytes(b'[gateway]\nsite = "caf\xe9"\n')
    err = check(cfg, capsys)
    assert f"{cfg}: not UTF-8 text" in err


def test_dropin_directory_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE)
    (tmp_path / "conf.d").write_text("[gateway]\nsite = 'x'\n")
    err = check(cfg, capsys)
    assert f"{tmp_path}/conf.d: not a directory (drop-ins go in conf.d/*.toml)" in err


def test_dropin_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE)
    (tmp_path / "conf.d" / "10-site.toml").mkdir(parents=True)
    err = check(cfg, capsys)
    assert f"{tmp_path}/conf.d/10-site.toml: is a directory, not a TOML file" in err


def test_config_path_with_a_nul(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = check(tmp_path / "a\x00b.toml", capsys)
    assert "a\\x00b.toml: cannot read: the file name contains a NUL byte" in err


def test_config_file_too_large(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + "#" * (16 * 1024 * 1024) + "\n")
    err = check(cfg, capsys)
    assert f"{cfg}: larger than 16 MiB; not a config file" in err


def run_unprivileged(cfg: Path) -> subprocess.CompletedProcess[str]:
    """``check-config`` without the right to read other people's files (root reads a 000 file
    anyway, so as root the capabilities that allow it are dropped first)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root without setpriv (util-linux): cannot drop CAP_DAC_OVERRIDE")
        caps = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "gateway.cli", "-c", str(cfg), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"},
    )


@pytest.mark.parametrize("what", ["main", "dropin", "dropin_dir", "password"])
def test_unreadable_files(tmp_path: Path, what: str) -> None:
    world_dir = tmp_path
    pw = world_dir / "pw"
    pw.write_text("secret\n")
    cfg = world_dir / "gridgate.toml"
    cfg.write_text(BASE + f'[uplink]\nhost = "h"\nusername = "u"\npassword_file = "{pw}"\n')
    (world_dir / "conf.d").mkdir()
    dropin = world_dir / "conf.d" / "10-a.toml"
    dropin.write_text("[uplink]\nport = 8883\n")
    target = {"main": cfg, "dropin": dropin, "dropin_dir": dropin.parent, "password": pw}[what]
    target.chmod(0)
    try:
        proc = run_unprivileged(cfg)
    finally:
        target.chmod(0o700)
    assert proc.returncode == 78, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{target}" in proc.stderr
    assert "ermission denied" in proc.stderr


def test_integer_too_large_for_a_float(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Found while fuzzing: take() turned 10**400 into a float (OverflowError, a traceback).
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + "status_interval = 1" + "0" * 400 + "\n")
    err = check(cfg, capsys)
    assert f"{cfg}: gateway.status_interval: expected a number, got an integer of 401 digits" in err


def test_integer_with_more_digits_than_python_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # tomllib raises ValueError (not TOMLDecodeError) beyond sys.get_int_max_str_digits().
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + "status_interval = 1" + "0" * 5000 + "\n")
    err = check(cfg, capsys)
    assert f"{cfg}: invalid TOML: Exceeds the limit (4300 digits)" in err


def test_secret_that_is_not_a_regular_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A FIFO blocked check-config forever; /dev/zero read until memory ran out.
    fifo = tmp_path / "pw"
    os.mkfifo(fifo)
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + f'[uplink]\nhost = "h"\nusername = "u"\npassword_file = "{fifo}"\n')
    err = check(cfg, capsys)
    assert f"{cfg}: uplink.password_file: secret file {fifo} is not a regular file" in err


def test_directories_that_cannot_be_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # check-config said OK for a config no daemon can start with.
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-dir").mkdir()
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        '[gateway]\nsite = "s"\nid = "g"\n'
        f'state_dir = "{tmp_path}/a-file"\nruntime_dir = "{tmp_path}/a-file/run"\n'
        f'[spool]\nfile = "{tmp_path}/a-dir"\n'
    )
    err = check(cfg, capsys)
    assert f"{cfg}: gateway.state_dir: {tmp_path}/a-file is not a directory" in err
    assert f"{cfg}: gateway.runtime_dir: {tmp_path}/a-file is not a directory" in err
    assert f"{cfg}: spool.file: {tmp_path}/a-dir is a directory" in err


def test_names_too_long_for_the_filesystem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "gridgate.toml"
    long_dir = "/var/lib/" + "x" * 256
    cfg.write_text(BASE.replace("/tmp/gridgate-malformed", long_dir))
    err = check(cfg, capsys)
    assert f"{cfg}: gateway.state_dir: a name in the path is longer than 255 bytes" in err
    cfg.write_text(BASE.replace("/tmp/gridgate-malformed", "/var" + "/x" * 2100))
    err = check(cfg, capsys)
    assert f"{cfg}: gateway.state_dir: longer than 4095 bytes" in err


def test_a_file_in_a_directory_nobody_may_enter(tmp_path: Path) -> None:
    # is_file() raises PermissionError (not False) inside a directory this user cannot search:
    # the TLS ca_file check (rules.existing_path) and the state_dir check were tracebacks.
    locked = tmp_path / "locked"
    locked.mkdir()
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        f'[gateway]\nsite = "s"\nid = "g"\nstate_dir = "{locked}/state"\n'
        f'[uplink]\nhost = "h"\n[uplink.tls]\nca_file = "{locked}/ca.pem"\n'
    )
    locked.chmod(0)
    try:
        proc = run_unprivileged(cfg)
    finally:
        locked.chmod(0o700)
    assert proc.returncode == 78, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{cfg}: uplink: cannot check {locked}/ca.pem: Permission denied" in proc.stderr


def test_relative_password_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Read from the working directory: "/" under systemd, wherever check-config was run by hand;
    # the check and the daemon could read two different files.
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + '[uplink]\nhost = "h"\nusername = "u"\npassword_file = "pw"\n')
    err = check(cfg, capsys)
    assert f"{cfg}: uplink.password_file: must be an absolute path, got 'pw'" in err
