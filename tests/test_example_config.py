"""The README's full example is a real, valid config, and the README shows it verbatim."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.config import load_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gridgate.toml"


def test_readme_embeds_the_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    assert EXAMPLE.read_text() in blocks


def test_example_validates(tmp_path: Path) -> None:
    # The example points at site files (CA, credential); give it stand-ins of its own.
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("secret\n")
    text = EXAMPLE.read_text().replace("/etc/gridgate/tls/ca.pem", str(ca))
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(text)
    config = load_config(cfg, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.daemons() == ["grid", "uplink"]
    assert config.sections["grid"] is not None
    head = config.sections["grid"].meters["head"]
    assert len(head.plan.points) == 35
    by_name = {p.name: p for p in head.plan.points}
    assert (by_name["voltage_l1"].low, by_name["voltage_l1"].high) == (207.0, 253.0)
    assert by_name["current_l1"].high == 250.0
    cab3 = config.sections["grid"].meters["cab3"]
    assert "breaker_closed" in {p.name for p in cab3.plan.points}
    assert cab3.connection.bus == "rs485-1"
    assert config.sections["uplink"].tls is not None and config.sections["uplink"].port == 8883
    assert (
        config.sections["uplink"].password is not None
        and config.sections["uplink"].password.reveal() == "secret"
    )
