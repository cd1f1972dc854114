"""``[bms]`` maps onto the kernel's config as written, chemistry defaults elsewhere."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_config
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
