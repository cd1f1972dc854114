"""Each daemon process loads only what it uses: on a gateway every megabyte of RSS counts, and the
uplink must keep running whatever another daemon's section says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).parent / "cases" / "config"

PROBE = """
import json, sys
from pathlib import Path
from gateway.config import load_config
from gateway.core.notify import Heartbeats
from gateway.core.runtime import DaemonContext, build_daemon
from gateway.spool.store import AsyncSpool, Spool
import gateway.cli
gateway.cli._parser()  # every command builds the whole command line first
config = load_config(Path(sys.argv[1]), env={}, only=sys.argv[2])
spool = Spool(Path(sys.argv[3]))
daemon = build_daemon(sys.argv[2], DaemonContext(config, AsyncSpool(spool), Heartbeats()))
heavy = ("numpy", "pymodbus", "asyncua", "paho", "serial", "cffi", "gateway._native")
print(json.dumps(sorted({m.split(".")[0] if m != "gateway._native" else m
                         for m in sys.modules if m.startswith(heavy)})))
"""


def _config_with_everything(tmp_path: Path) -> Path:
    # The grid meters of one case and the battery rack of another, in one file.
    grid = (CASES / "ok_full" / "gridgate.toml").read_text()
    bms = (CASES / "bms_ok" / "gridgate.toml").read_text()
    bms = bms[bms.index("[bms]") :]
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(grid + "\n" + bms)
    return cfg


def _loaded(tmp_path: Path, daemon: str) -> list[str]:
    cfg = _config_with_everything(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(cfg), daemon, str(tmp_path / "spool.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_uplink_loads_no_field_protocols_and_no_numpy(tmp_path: Path) -> None:
    assert _loaded(tmp_path, "uplink") == ["paho"]


def test_grid_loads_modbus_and_the_kernels_but_no_mqtt(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, "grid")
    assert {"numpy", "pymodbus", "gateway._native"} <= set(loaded)
    assert not {"paho", "asyncua"} & set(loaded)


def test_a_broken_battery_section_does_not_stop_the_uplink(tmp_path: Path) -> None:
    from gateway.config import load_config
    from gateway.core.errors import ConfigError

    cfg = _config_with_everything(tmp_path)
    cfg.write_text(cfg.read_text().replace('chemistry = "lfp"', 'chemistry = "lead-acid"'))
    config = load_config(cfg, env={}, only="uplink")
    assert config.sections["uplink"].enabled
    try:
        load_config(cfg, env={})
    except ConfigError as exc:
        assert any(i.path == "bms.chemistry" for i in exc.issues)
    else:
        raise AssertionError("check-config must still report the broken battery section")
