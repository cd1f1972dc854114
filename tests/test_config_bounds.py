"""Issue 11, item 8: every malformed config input gives exit 78 with the file and the key.

Each value below was accepted before the key had a range (or the string a rule): a number that
was only checked "> 0" or not at all, a string that reached a log line, the resolver or open(2)
with a control character in it. Each must now be refused at its own key. The case folders
``bms_ranges``, ``rack_times_and_text``, ``plant_ranges`` and ``uplink_text`` hold the same kind
of config with the exact lines ``check-config`` prints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.config.issues import IssueSink
from gateway.config.text_rules import host_name, is_host, plain_text
from gateway.core.errors import ConfigError

_GATEWAY = '[gateway]\nsite = "s"\nid = "g"\nstate_dir = "/tmp/gridgate-case"\n'
_RACK = (
    '[bms]\nchemistry = "nmc"\n[bms.cells]\ncapacity_ah = 94.0\n'
    '[[bms.lines]]\nname = "a"\nport = "/dev/ttyUSB0"\nboards = 1\n'
)
_PLANT = (
    '[plant]\nprofile = "gas_turbine"\n[plant.opcua]\nendpoint = "opc.tcp://127.0.0.1:4840"\n'
    'security_policy = "None"\nsecurity_mode = "None"\nallow_insecure = true\n'
)
_LIMIT = '[[plant.rules.limits]]\ntag = "lube_oil_temp"\nkind = "high"\nseverity = "warning"\n'

# (the config, the key that must be refused): each was accepted before.
NEWLY_REFUSED = [
    (_RACK + "[bms.limits]\nover_voltage = 1e308\n", "bms.limits.over_voltage"),
    (_RACK + "[bms.limits]\nunder_temperature = -1e308\n", "bms.limits.under_temperature"),
    (_RACK + "[bms.limits]\nstale_s = 1e308\n", "bms.limits.stale_s"),
    (_RACK + "[bms.limits]\njump_v = 1e308\n", "bms.limits.jump_v"),
    (
        _RACK + "[bms.limits]\nunder_voltage = 4.3\nunder_voltage_clear = 4.35\n",
        "bms.limits.under_voltage",
    ),  # above OV
    (_RACK + "[bms.limits]\nover_voltage = 5.2\n", "bms.limits.over_voltage"),  # above v_hi
    (_RACK + "[bms.balancing]\nbleed_ohm = 1e-300\n", "bms.balancing.bleed_ohm"),
    (_RACK + "[bms.balancing]\nmin_cell_v = -1e308\n", "bms.balancing.min_cell_v"),
    (_RACK + "[bms.balancing]\nmax_temp_c = 60.0\n", "bms.balancing.max_temp_c"),  # above OT
    (_RACK + "[bms.balancing]\nmax_data_age_s = 1e308\n", "bms.balancing.max_data_age_s"),
    (_RACK + "[bms.estimator]\nq_soc = 1e308\n", "bms.estimator.q_soc"),
    (_RACK + "[bms.estimator]\nr_v = 1e-300\n", "bms.estimator.r_v"),
    (_RACK.replace("= 94.0", "= 1e308"), "bms.cells.capacity_ah"),
    (_RACK.replace("= 94.0", "= 94.0\nr0_ohm = 1e308"), "bms.cells.r0_ohm"),
    (
        _RACK.replace("= 94.0", "= 94.0\nocv_soc = [0.0, 1.0]\nocv_v = [3.0, 1e308]"),
        "bms.cells.ocv_v",
    ),
    (_RACK + "[bms.bus]\nresponse_timeout = 1e-300\n", "bms.bus.response_timeout"),
    (_RACK + "[bms.bus]\ncycle = 1e308\n", "bms.bus.cycle"),
    (_RACK.replace('"a"', '"a\\nforged"'), "bms.lines[0].name"),
    (_RACK.replace("ttyUSB0", "ttyUSB0\\u0000"), "bms.lines[0].port"),
    (_PLANT + "sampling_interval = 1e-300\n", "plant.opcua.sampling_interval"),
    (_PLANT + "timeout = 1e308\n", "plant.opcua.timeout"),
    (_PLANT + "reconnect_max = 1e-300\n", "plant.opcua.reconnect_max"),
    (_PLANT.replace("127.0.0.1", "plc\\r\\nforged"), "plant.opcua.endpoint"),
    (_PLANT.replace("127.0.0.1", "plc host"), "plant.opcua.endpoint"),
    (_PLANT + _LIMIT + "value = 1e308\n", "plant.rules.limits[0].value"),
    (_PLANT + _LIMIT + "value = 80.0\ndelay_s = 1e308\n", "plant.rules.limits[0].delay_s"),
    (_PLANT.replace("[plant.opcua]", "rated_kw = 1e308\n[plant.opcua]"), "plant.rated_kw"),
    (_PLANT + "deadband = 1e308\n", "plant.opcua.deadband"),
    (_PLANT.replace("[plant.opcua]", 'device = "gt1\\nforged"\n[plant.opcua]'), "plant.device"),
    ("[grid.limits.voltage_l1]\nhigh = 1e308\n", "grid.limits.voltage_l1.high"),
    ("[grid.limits.current_l1]\ndeadband = 1e308\n", "grid.limits.current_l1.deadband"),
    ('[uplink]\nhost = "broker\\u0000.evil"\n', "uplink.host"),
    ('[uplink]\nhost = "broker example"\n', "uplink.host"),
    ('[uplink]\nhost = "10.0.0.256"\n', "uplink.host"),
    ('[uplink]\nclient_id = "gw\\nforged"\n', "uplink.client_id"),
    ('[uplink]\nusername = "gw\\u001b[2J"\n', "uplink.username"),
]


def _issues(tmp_path: Path, body: str) -> list[str]:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(_GATEWAY + body)
    try:
        load_config(cfg, env={})
    except ConfigError as exc:
        return [f"{i.path}: {i.reason}" for i in exc.issues]
    return []


@pytest.mark.parametrize(("body", "key"), NEWLY_REFUSED, ids=[k for _, k in NEWLY_REFUSED])
def test_a_value_accepted_before_is_refused_at_its_key(tmp_path: Path, body: str, key: str) -> None:
    found = _issues(tmp_path, body)
    assert any(line.startswith(f"{key}: ") for line in found), found
    assert all("\n" not in line and "\x00" not in line and "\x1b" not in line for line in found)


def test_check_config_exits_78_naming_the_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(_GATEWAY + _RACK + "[bms.limits]\nover_voltage = 1e308\n")
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(cfg), "check-config"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 78, out
    assert f"{cfg}: bms.limits.over_voltage: must be between 0.5 and 5.5 V, got 1e+308" in (
        out.stdout + out.stderr
    )


@pytest.mark.parametrize(
    "body",
    [
        _RACK + "[bms.limits]\nover_voltage = 4.1\nover_voltage_clear = 4.0\n",
        _RACK + "[bms.limits]\nunder_voltage = 0.5\nunder_voltage_clear = 0.6\nopen_wire_v = 0.1\n",
        _RACK + "[bms.balancing]\nmax_temp_c = 45.0\nmin_cell_v = 3.0\n",
        _PLANT.replace("127.0.0.1", "[::1]") + "sampling_interval = 0.01\ntimeout = 60\n",
        _PLANT + _LIMIT + "value = 80.0\ndelay_s = 0\nhysteresis = 2.0\n",
        '[uplink]\nhost = "mqtt.utility.example"\nclient_id = "gw-01"\nusername = "gw-01"\n',
    ],
)
def test_plausible_values_pass_their_own_keys(tmp_path: Path, body: str) -> None:
    keys = ("bms.limits", "bms.balancing", "plant.opcua", "plant.rules", "uplink.host")
    keys += ("uplink.client_id", "uplink.username")
    found = _issues(tmp_path, body)
    assert not [line for line in found if line.startswith(keys)], found


@pytest.mark.parametrize(
    "host",
    ["localhost", "mqtt.utility.example", "mqtt.utility.example.", "192.0.2.10", "::1",
     "[::1]", "fe80::1%eth0", "my_broker.lan", "a" * 63 + ".example"],
)  # fmt: skip
def test_host_names_and_ip_literals(host: str) -> None:
    assert is_host(host)


@pytest.mark.parametrize(
    "host",
    ["", " ", "broker example", "broker\x00.evil", "broker\n", "-broker", "broker-", "a..b",
     "10.0.0.256", "1.2.3", "[broker]", "a" * 64 + ".example", "b/+", "x" * 254],
)  # fmt: skip
def test_not_host_names(host: str) -> None:
    assert not is_host(host)


def test_plain_text_shows_the_value_escaped() -> None:
    sink = IssueSink("t.toml")
    value = plain_text(sink, "x", {"k": "a\nb\u202ec\x7f"}, "k", "dflt", max_len=10)
    assert value == "dflt"
    [issue] = sink.issues
    assert issue.path == "x.k"
    assert issue.reason == (
        'must be 1-10 characters without control characters, got "a\\nb\\u202ec\\u007f"'
    )
    assert plain_text(sink, "x", {"k": "x" * 11}, "k", None, max_len=10) is None
    assert plain_text(sink, "x", {"k": "/dev/ttyUSB0"}, "k", None) == "/dev/ttyUSB0"
    assert host_name(sink, "x", {}, "h", "localhost") == "localhost"
    assert len(sink.issues) == 2
