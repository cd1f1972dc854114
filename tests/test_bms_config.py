"""``[bms]`` maps onto the kernel's config as written, chemistry defaults elsewhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gateway.bms.kernel_config import KERNEL_KEYS
from gateway.config import load_config
from gateway.core.errors import ConfigError
from gateway.native.cells import BalanceMode, CellsConfig

CASES = Path(__file__).parent / "cases" / "config"


def test_ok_case_reaches_the_kernel_config() -> None:
    config = load_config(CASES / "bms_ok" / "gridgate.toml", env={})
    assert config.daemons() == ["bms", "uplink"]  # producers before the uplink
    bms = config.sections["bms"]
    assert bms is not None
    assert bms.rack.n_cells == 50 * 14
    assert bms.cycle == 0.1
    assert bms.balancing.mode == "active"
    cells = bms.cells_config()
    lfp = CellsConfig.for_chemistry("lfp")  # type: ignore[arg-type]
    assert (cells.ov_set, cells.ov_clear) == (3.62, 3.55)
    assert cells.uv_set == lfp.uv_set and cells.r_v == lfp.r_v
    assert cells.bal_mode is BalanceMode.VOLTAGE or cells.bal_mode == BalanceMode.VOLTAGE
    assert cells.bal_v_window == 0.015
    assert cells.cells_per_board == 14
    assert bms.recording is not None
    assert bms.recording.dir == Path("/tmp/gridgate-case/bms-recordings")
    assert bms.recording.every == 10
    assert bms.cell.capacity_ah == 280.0
    assert abs(bms.cell.tau_s - 0.3e-3 * 833_000.0) < 1e-9


def test_advisory_is_the_default(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        '[gateway]\nsite = "s"\nid = "g"\nstate_dir = "/tmp/x"\n'
        '[bms]\nchemistry = "nmc"\n[bms.cells]\ncapacity_ah = 94\n'
        '[[bms.lines]]\nname = "a"\nport = "/dev/ttyUSB0"\nboards = 1\n'
        "[uplink]\nenabled = false\n"
    )
    config = load_config(cfg, env={})
    assert config.sections["bms"] is not None
    assert config.sections["bms"].balancing.mode == "advisory"
    assert config.sections["bms"].recording is None
    assert config.daemons() == ["bms"]


def _bms_issues(tmp_path: Path, extra: str) -> list[str]:
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        '[gateway]\nsite = "s"\nid = "g"\nstate_dir = "/tmp/x"\n'
        '[bms]\nchemistry = "nmc"\n[bms.cells]\ncapacity_ah = 94\n'
        '[[bms.lines]]\nname = "a"\nport = "/dev/ttyUSB0"\nboards = 1\n' + extra
    )
    try:
        load_config(cfg, env={})
    except ConfigError as exc:
        return [f"{i.path}: {i.reason}" for i in exc.issues]
    return []


def test_every_kernel_field_the_config_sets_has_one_config_key() -> None:
    fields = {f.name for f in dataclasses.fields(CellsConfig)}
    assert set(KERNEL_KEYS) <= fields
    assert len(set(KERNEL_KEYS.values())) == len(KERNEL_KEYS)
    assert KERNEL_KEYS["ov_clear"] == "bms.limits.over_voltage_clear"
    assert KERNEL_KEYS["bal_mode"] == "bms.balancing.target"


def test_a_kernel_problem_lands_on_the_key_that_was_written(tmp_path: Path) -> None:
    # Only the set threshold is written: the default clear (4.20) no longer lies inside it.
    assert _bms_issues(tmp_path, "[bms.limits]\nover_voltage = 4.1\n") == [
        "bms.limits.over_voltage: must lie inside ov_set (<= 4.1)"
        " (ov_clear is bms.limits.over_voltage_clear)"
    ]
    assert _bms_issues(tmp_path, "[bms.limits]\nopen_wire_v = 5.2\n") == [
        "bms.limits.open_wire_v: 0 < v_lo < v_hi, both finite (v_hi is bms.limits.max_plausible_v)"
    ]


def test_legal_zeros_survive(tmp_path: Path) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        '[gateway]\nsite = "s"\nid = "g"\nstate_dir = "/tmp/x"\n'
        '[bms]\nchemistry = "nmc"\n[bms.cells]\ncapacity_ah = 94\nr0_ohm = 0\nr1_ohm = 0\n'
        "[bms.balancing]\nmax_per_board = 0\n"
        '[[bms.lines]]\nname = "a"\nport = "/dev/ttyUSB0"\nboards = 1\ntemps_per_board = 0\n'
        "[uplink]\nenabled = false\n"
    )
    bms = load_config(cfg, env={}).sections["bms"]
    assert (bms.cell.r0_ohm, bms.cell.r1_ohm) == (0.0, 0.0)
    assert bms.cells_config().bal_max_per_board == 0
    assert bms.rack.n_temps == 0
