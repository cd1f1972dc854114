"""Shared helpers of the estimator tests (no tests here): the simulator's feeder as an estimation
config, and meter readings taken from the simulator exactly as the daemon maps them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gateway.config.issues import IssueSink
from gateway.grid.estimation_config import EstimationConfig, MeterLocation, parse_estimation
from gateway.grid.estimator import MeterReading
from gateway.sim.lv_feeder import FEEDER_JSON, LvFeederModel

MIDSUMMER = 1718928000.0  # 2024-06-21 00:00 UTC: long PV day


def estimation_config(
    model: LvFeederModel, meters: list[str] | None = None, **overrides: Any
) -> EstimationConfig:
    locs = {
        n: MeterLocation(d.get("node"), d.get("line"), "abc")  # type: ignore[arg-type]
        for n, d in model.meter_locations().items()
        if meters is None or n in meters
    }
    table = {"feeder": str(FEEDER_JSON), "connections": model.connections(), **overrides}
    sink = IssueSink("test")
    cfg = parse_estimation(sink, table, Path("/"), locs)
    sink.raise_if_any()
    assert cfg is not None
    return cfg


def readings(values: dict[str, dict[str, float]], names: list[str]) -> dict[str, MeterReading]:
    def arr(fmt: str, n: str) -> np.ndarray:
        return np.array([values[n][fmt.format(i)] for i in (1, 2, 3)])

    return {
        n: MeterReading(arr("power_l{}", n), arr("reactive_power_l{}", n), arr("voltage_l{}", n))
        for n in names
    }
