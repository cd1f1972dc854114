"""A legal 0 written in the config reaches the parsed config as 0: no ``value or default``."""

from __future__ import annotations

from pathlib import Path

from drivers.modbus.device import parse_device
from drivers.modbus.regmap import parse_register_map
from drivers.opcua.config import parse_opcua
from gateway.config import load_config
from gateway.config.issues import IssueSink
from gateway.sim.lv_feeder import LvFeederModel
from tests.estimator_support import MIDSUMMER, estimation_config

CASES = Path(__file__).parent / "cases" / "config"


def test_plant_zeros_survive(tmp_path: Path) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        (CASES / "plant_ok" / "gridgate.toml")
        .read_text()
        .replace(
            '[plant]\nprofile = "biogas_chp"\n', '[plant]\nprofile = "biogas_chp"\nsettle_s = 0\n'
        )
        + "\n[plant.maintenance]\neoh_per_start = 0\neoh_per_trip = 0\ntrip_load_fraction = 0\n"
        "[plant.maintenance.initial]\noperating_hours = 0\nstarts = 0\n"
        "[uplink]\nenabled = false\n"
    )
    plant = load_config(cfg, env={}).sections["plant"]
    assert plant.settle_s == 0.0
    policy = plant.maintenance
    assert (policy.eoh_per_start, policy.eoh_per_trip, policy.trip_load_fraction) == (0, 0, 0)
    assert (plant.counters.initial_hours, plant.counters.initial_starts) == (0.0, 0)


def test_estimation_zeros_survive() -> None:
    model = LvFeederModel(seed=1, start=MIDSUMMER)
    cfg = estimation_config(
        model,
        balance_iterations=0,
        hysteresis_pu=0,
        hysteresis_pct=0,
        utc_offset_h=0,
        longitude_deg=0,
        clear_sky_index=0,
    )
    assert cfg.balance_iterations == 0
    assert (cfg.hysteresis_pu, cfg.hysteresis_pct, cfg.clear_sky_index) == (0.0, 0.0, 0.0)
    assert (cfg.utc_offset_h, cfg.longitude_deg) == (0.0, 0.0)


def test_driver_zeros_survive() -> None:
    sink = IssueSink("g.toml")
    conn = parse_device(
        "m", {"host": "h", "unit_id": 0, "retries": 0, "max_gap": 0}, sink, "modbus.devices.m"
    )
    assert conn is not None and (conn.unit_id, conn.retries, conn.max_gap) == (0, 0, 0)
    [point] = parse_register_map(
        {"points": [{"name": "p", "address": 0, "offset": 0, "low": 0, "deadband": 0}]}, sink, "m"
    )
    assert (point.address, point.offset, point.low, point.deadband) == (0, 0.0, 0.0, 0.0)
    opcua = parse_opcua(
        sink,
        {
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "security_policy": "None",
            "security_mode": "None",
            "allow_insecure": True,
            "deadband": 0,
            "nodes": [{"name": "n", "node_id": "ns=2;s=n", "low": 0}],
        },
    )
    assert opcua is not None and opcua.nodes[0].deadband == 0.0 and opcua.nodes[0].low == 0.0
    assert sink.issues == []
