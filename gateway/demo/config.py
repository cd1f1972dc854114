"""The demo's gridgate.toml: the whole gateway on the simulated bench, nothing to configure.

The same config a site would write, only pointed at the simulators: the feeder's meters with
their places in the feeder model so the estimator runs, the rack's lines, the plant's PLC, and
the uplink to the demo's private broker (plain MQTT on loopback, said so in so many words).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.demo.sims import RACK_BOARDS
from gateway.sim.bms_bench_config import bms_bench_config
from gateway.sim.lv_feeder import FEEDER_JSON, LvFeederModel
from gateway.sim.plant_bench_config import plant_bench_config
from gateway.sim.toml_text import dumps

SITE, GATEWAY_ID = "demo", "bench-1"
DAEMONS = ("grid", "bms", "plant")
GRID_WINDOW_S = 10.0
BMS_WINDOW_S = 10.0
PLANT_WINDOW_S = 10.0


def _grid(feeder: LvFeederModel, port: int, meters: dict[str, int]) -> dict[str, Any]:
    where = feeder.meter_locations()
    meter = {"profile": "eastron_sdm630", "transport": "tcp", "host": "127.0.0.1", "port": port}
    return {
        "window": GRID_WINDOW_S,
        "integrity_every": 6,
        "limits": {
            f"voltage_l{phase}": {"low": 207.0, "high": 253.0, "deadband": 1.0}
            for phase in (1, 2, 3)
        },
        "meters": {
            name: {**meter, "unit_id": unit, "poll_interval": 1.0, "timeout": 0.5, **where[name]}
            for name, unit in meters.items()
        },
        "estimation": {
            "feeder": str(FEEDER_JSON),
            "period": GRID_WINDOW_S,
            "connections": feeder.connections(),
        },
    }


def demo_config(
    state_dir: Path,
    broker: tuple[str, int],
    *,
    feeder: tuple[LvFeederModel, int, dict[str, int]] | None,
    rack_ports: list[str] | None,
    plant_endpoint: str | None,
    plant_speed: float,
) -> str:
    """The config text; a daemon whose simulator is None (``--only``) is left out."""
    host, port = broker
    config: dict[str, Any] = {
        "gateway": {
            "site": SITE,
            "id": GATEWAY_ID,
            "state_dir": str(state_dir),
            "status_interval": 2,
        },
        "spool": {"max_mb": 16},
        # Loopback to the demo's own broker: plain MQTT, no password.
        "uplink": {"host": host, "port": port, "protocol": "5", "tls": False},
    }
    if feeder is not None:
        config["grid"] = _grid(*feeder)
    if rack_ports is not None:
        bms = bms_bench_config(state_dir, rack_ports, RACK_BOARDS)["bms"]
        bms["window"] = BMS_WINDOW_S
        config["bms"] = bms
    if plant_endpoint is not None:
        plant = plant_bench_config(state_dir, plant_endpoint, plant_speed)["plant"]
        plant["window"] = PLANT_WINDOW_S
        config["plant"] = plant
    return "# Written by gridgate demo: the whole gateway on a simulated bench.\n" + dumps(config)
