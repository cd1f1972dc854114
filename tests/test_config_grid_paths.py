"""The grid section's file names (feeder file, profile directories): a bad one is a config error
with its key, never a traceback or a hang. Each test failed before its fix (noted per test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_config_malformed import BASE, check

METER = '[grid.meters.m]\nhost = "h"\nprofile = "eastron_sdm630"\nnode = 1\n'


def write(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(BASE + text)
    return cfg


def test_feeder_with_a_nul(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: ValueError (embedded null byte) from open(), rc 1.
    cfg = write(tmp_path, METER + '[grid.estimation]\nfeeder = "f\\u0000.json"\n')
    err = check(cfg, capsys)
    assert f"{cfg}: grid.estimation.feeder: must not contain control characters" in err


def test_feeder_that_never_ends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: check-config read /dev/zero until memory ran out.
    cfg = write(tmp_path, METER + '[grid.estimation]\nfeeder = "/dev/zero"\n')
    err = check(cfg, capsys)
    assert f"{cfg}: grid.estimation.feeder: /dev/zero is not a regular file" in err


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("p\\u0000", "must not contain control characters"),
        ("z" * 300, "a name in the path is longer than 255 bytes"),
    ],
)
def test_profile_dirs_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, reason: str
) -> None:
    # Before: ValueError (NUL) or OSError ENAMETOOLONG from the profile lookup, rc 1.
    cfg = write(tmp_path, f'[grid]\nprofile_dirs = ["{entry}"]\n' + METER)
    err = check(cfg, capsys)
    assert f"{cfg}: grid.profile_dirs[0]: {reason}" in err
