"""`-c FILE` works before and after every command, and the shipped units' command lines run.

The units once wrote `gridgate run X -c FILE` while the CLI took -c only before the command: each
exited 2 (usage) and systemd gave up after five restarts, with every string-comparing test green.
So the units' ExecStart lines are run here as written, pointed at a missing config: each must fail
as a config error (78) naming that file, never as a usage error (2).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNITS = sorted((REPO / "systemd").glob("gridgate-*.service"))
OK_CONFIG = REPO / "tests" / "cases" / "config" / "ok_full" / "gridgate.toml"
EX_CONFIG = 78


def _gridgate(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def _exec(unit: Path, key: str) -> list[str]:
    lines = [ln for ln in unit.read_text().splitlines() if ln.startswith(f"{key}=")]
    assert len(lines) == 1, unit
    # systemd's $MAINPID, for a process that cannot exist: the config is refused before it counts
    return shlex.split(lines[0].removeprefix(f"{key}=").replace("$MAINPID", "999999999"))


@pytest.mark.parametrize("key", ["ExecStart", "ExecReload"])
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_each_units_command_line_runs_as_written(unit: Path, key: str, tmp_path: Path) -> None:
    argv = _exec(unit, key)
    assert Path(argv[0]).name == "gridgate"
    missing = tmp_path / "gridgate.toml"
    args = [str(missing) if a == "/etc/gridgate/gridgate.toml" else a for a in argv[1:]]
    assert str(missing) in args, "the unit names the config file it runs with"
    out = _gridgate(args, tmp_path)
    assert out.returncode == EX_CONFIG, out.stderr
    assert str(missing) in out.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["check-config"],
        ["status"],
        ["points"],
        ["run", "grid"],
        ["reload", "grid"],
        ["replay", "bms", "rec.csv"],
    ],
    ids=" ".join,
)
def test_config_option_before_and_after_the_command(command: list[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.toml")
    for args in (
        ["-c", missing, *command],
        [*command, "-c", missing],
        [*command, "--config", missing],
    ):
        out = _gridgate(args, tmp_path)
        assert out.returncode == EX_CONFIG, (args, out.stderr)
        assert missing in out.stderr, args


def test_check_config_reads_the_file_given_after_the_command(tmp_path: Path) -> None:
    before = _gridgate(["-c", str(OK_CONFIG), "check-config"], tmp_path)
    after = _gridgate(["check-config", "-c", str(OK_CONFIG)], tmp_path)
    assert before.returncode == after.returncode == 0, (before.stderr, after.stderr)
    assert after.stdout == before.stdout and "config OK" in after.stdout


def test_the_later_config_option_wins(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.toml")
    out = _gridgate(["-c", missing, "check-config", "-c", str(OK_CONFIG)], tmp_path)
    assert out.returncode == 0, out.stderr


def test_status_and_points_need_no_secret(tmp_path: Path) -> None:
    # On a gateway the MQTT password is a systemd credential only the uplink's unit receives; a
    # technician's `gridgate status` in a shell has no CREDENTIALS_DIRECTORY and must still work.
    text = OK_CONFIG.read_text()
    assert "[uplink]" in text
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        text.replace(
            "[uplink]\n", '[uplink]\nusername = "gw"\npassword_credential = "mqtt-password"\n', 1
        )
    )
    env_less = _gridgate(["check-config", "-c", str(cfg)], tmp_path)
    assert env_less.returncode == EX_CONFIG and "CREDENTIALS_DIRECTORY" in env_less.stderr
    status = _gridgate(["status", "-c", str(cfg)], tmp_path)
    assert status.returncode == 3, status.stderr  # loaded fine; nothing runs: "not running"
    assert "uplink: not running" in status.stdout
    points = _gridgate(["points", "-c", str(cfg)], tmp_path)
    assert "CREDENTIALS_DIRECTORY" not in points.stderr
    assert "no live values" in points.stderr  # nothing running: the honest answer, not 78
