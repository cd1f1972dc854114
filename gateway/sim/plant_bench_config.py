"""The gridgate config of the simulated plant bench: the plant daemon against the plant simulator's
OPC UA server (:mod:`gateway.sim.plant_server`) on loopback, gas turbine ``gt1``, served warm and
accelerated.

One definition for the in-process daemon tests (tests/test_plant_daemon.py), the HIL bench
(hil_tests/test_plant_bench.py) and the CPU benchmark (bench/bench_plant_daemon.py), so what the
benchmark measures is the daemon the tests check. It lives beside the simulators because the
benchmark scripts import the installed ``gateway`` package, not the test folders. Write it with
:func:`gateway.sim.toml_text.dumps`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plant_bench_config"]


def plant_bench_config(
    state_dir: Path,
    endpoint: str,
    speed: float,
    *,
    site: str = "bench",
    gateway_id: str = "gw-plant",
    device: str | None = "gt1",
    window: int = 2,
    sampling_interval: float = 0.1,
    quick_reconnect: bool = True,
    broker: tuple[str, int] | None = None,
    status_interval: float | None = None,
    log_level: str | None = None,
    save_every_s: int | None = None,
) -> dict[str, Any]:
    """The config as a dict: the daemon reads the simulator at ``endpoint`` at ``speed`` plant
    seconds per wall second, sampling and publishing every ``sampling_interval`` wall seconds,
    one summary per ``window`` plant seconds.

    ``broker`` (host, port) turns the uplink on towards that broker; None leaves it off and the
    rows in the spool. ``quick_reconnect`` shortens the OPC UA timeout and reconnect backoff for
    tests that restart the server. ``device`` None, and ``status_interval``, ``log_level`` and
    ``save_every_s`` (``[plant.maintenance]``) left None, keep the daemon's defaults.
    """
    gateway: dict[str, Any] = {"site": site, "id": gateway_id, "state_dir": str(state_dir)}
    if status_interval is not None:
        gateway["status_interval"] = status_interval
    if log_level is not None:
        gateway["log_level"] = log_level
    uplink: dict[str, Any] = {"enabled": False}
    if broker is not None:
        host, port = broker
        # The shortest keepalive the config allows: a lost broker is noticed in seconds.
        uplink = {"host": host, "port": port, "keepalive": 5, "tls": False}
    opcua: dict[str, Any] = {
        "endpoint": endpoint,
        # Loopback to the simulator, which serves without security.
        "security_policy": "None",
        "security_mode": "None",
        "allow_insecure": True,
        "sampling_interval": sampling_interval,
        "publishing_interval": sampling_interval,
    }
    if quick_reconnect:
        opcua["timeout"] = 1.0
        # Reconnect quickly once a server restart in the test is over.
        opcua["reconnect_max"] = 0.5
    plant: dict[str, Any] = {"profile": "gas_turbine"}
    if device is not None:
        plant["device"] = device
    plant["settle_s"] = 0  # the simulator starts warm: nothing to settle
    plant["window"] = window
    # Plant seconds per wall second: as fast as the simulator serves them.
    plant["simulation_speed"] = speed
    plant["opcua"] = opcua
    if save_every_s is not None:
        plant["maintenance"] = {"save_every_s": save_every_s}
    return {"gateway": gateway, "uplink": uplink, "plant": plant}
