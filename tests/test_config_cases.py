"""Config case folders: each holds a config (plus drop-ins) and the exact errors it must produce.

Paths in expected.txt are relative to the case folder, so the cases run from any checkout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.core.errors import ConfigError

CASES = Path(__file__).parent / "cases" / "config"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if p.is_dir())


def render(case: Path) -> list[str]:
    try:
        load_config(case / "gridgate.toml", env={})
    except ConfigError as exc:
        return [str(i).replace(f"{case}/", "") for i in exc.issues]
    return ["OK"]


def expected(case: Path) -> list[str]:
    return [line for line in (case / "expected.txt").read_text().splitlines() if line.strip()]


def test_there_are_at_least_ten_bad_cases() -> None:
    bad = [n for n in CASE_NAMES if expected(CASES / n) != ["OK"]]
    assert len(bad) >= 10, bad


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case(name: str) -> None:
    case = CASES / name
    assert render(case) == expected(case)


def test_check_config_exit_code_and_lines() -> None:
    case = CASES / "unknown_key"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(case / "gridgate.toml"), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 78
    lines = proc.stderr.splitlines()
    # Every problem, not just the first, each as FILE: key.path: reason.
    assert f"{case}/gridgate.toml: gateway.sitee: unknown key" in "\n".join(lines)
    assert any(
        line.startswith(f"{case}/gridgate.toml: uplink.keep_alive: unknown key") for line in lines
    )


def test_check_config_ok_prints_plan() -> None:
    case = CASES / "ok_full"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(case / "gridgate.toml"), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "config OK" in proc.stdout
    assert "meter head:" in proc.stdout


def test_secret_never_in_repr(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t-value\n")
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        '[gateway]\nsite = "s"\nid = "g"\nstate_dir = "/tmp/x"\n'
        f'[uplink]\nusername = "u"\npassword_file = "{secret}"\n'
    )
    config = load_config(cfg, env={})
    assert config.sections["uplink"].password is not None
    assert config.sections["uplink"].password.reveal() == "s3cr3t-value"
    assert "s3cr3t" not in repr(config)


def test_secret_from_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "mqtt-password").write_text("from-credential")
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        '[gateway]\nsite = "s"\nid = "g"\nstate_dir = "/tmp/x"\n'
        '[uplink]\nusername = "u"\npassword_credential = "mqtt-password"\n'
    )
    config = load_config(cfg, env={"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")})
    assert config.sections["uplink"].password is not None
    assert config.sections["uplink"].password.reveal() == "from-credential"
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env={})
    assert "CREDENTIALS_DIRECTORY is not set" in str(err.value)


def test_dropins_apply_in_name_order(tmp_path: Path) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text('[gateway]\nsite = "s"\nid = "g"\nstate_dir = "/tmp/x"\n[uplink]\nport = 1\n')
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "20-b.toml").write_text("[uplink]\nport = 3\n")
    (tmp_path / "conf.d" / "10-a.toml").write_text('[uplink]\nport = 2\nhost = "a"\n')
    (tmp_path / "conf.d" / "ignored.txt").write_text("not toml at all [")
    config = load_config(cfg, env={})
    assert config.sections["uplink"].port == 3
    assert config.sections["uplink"].host == "a"
    assert [p.name for p in config.files] == ["gridgate.toml", "10-a.toml", "20-b.toml"]
