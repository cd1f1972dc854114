"""Secure by default: TLS unless the config says ``tls = false``; a password never in clear text
without ``allow_plaintext_password = true``; a warning on every start that runs without TLS.

The daemon tests run ``gridgate run uplink`` as a process against a real mosquitto: a TLS listener
with the certificates of ``tests/test_uplink_tls.py`` (the system trust store is pointed at the
test CA with ``SSL_CERT_FILE``, which OpenSSL's default verify paths honour), and a plain listener
with password authentication for the explicit opt-in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.core.errors import ConfigError
from gateway.core.status import read_status
from gateway.spool.store import NewRow, Spool
from gateway.uplink.config import UplinkConfig
from gateway.uplink.daemon import mqtt_settings
from tests.mosquitto import Broker, BrokerTls, ClientTls, Recorder
from tests.test_uplink_tls import Pki, make_pki

GATEWAY = '[gateway]\nsite = "s"\nid = "g"\nstate_dir = "{state}"\nstatus_interval = 0.5\n'
WARNING = "uplink: TLS is off (tls = false)"


def _uplink(tmp_path: Path, uplink: str, env: dict[str, str] | None = None) -> UplinkConfig:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(GATEWAY.format(state=tmp_path / "state") + uplink)
    found = load_config(cfg, env=env or {}).section("uplink", UplinkConfig)
    assert found is not None
    return found


@pytest.mark.parametrize(
    "uplink",
    [
        "",  # no [uplink] at all
        '[uplink]\nhost = "broker.example"\n',
        '[uplink]\nhost = "broker.example"\n[uplink.tls]\n',  # an empty table
        '[uplink]\nhost = "broker.example"\ntls = true\n',
    ],
    ids=["no-uplink", "no-tls-table", "empty-tls-table", "tls-true"],
)
def test_tls_is_on_unless_the_config_says_false(tmp_path: Path, uplink: str) -> None:
    cfg = _uplink(tmp_path, uplink)
    assert cfg.tls is not None and cfg.port == 8883
    settings = mqtt_settings(cfg)
    assert settings.tls and settings.ca_file is None  # the system store verifies the broker
    assert settings.where.startswith("mqtts://")


def test_tls_false_is_plain_mqtt_on_1883(tmp_path: Path) -> None:
    cfg = _uplink(tmp_path, '[uplink]\nhost = "b"\ntls = false\n')
    assert cfg.tls is None and cfg.port == 1883
    assert not mqtt_settings(cfg).tls


def test_a_ca_file_still_means_what_it_meant(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed at check time\n")
    cfg = _uplink(tmp_path, f'[uplink]\nhost = "b"\n[uplink.tls]\nca_file = "{ca}"\n')
    assert cfg.tls is not None and cfg.tls.ca_file == ca and cfg.port == 8883
    assert mqtt_settings(cfg).ca_file == str(ca)


def test_a_password_with_tls_by_default_is_fine(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = _uplink(tmp_path, f'[uplink]\nusername = "u"\npassword_file = "{tmp_path / "pw"}"\n')
    assert cfg.tls is not None


def test_plaintext_password_is_refused_without_the_opt_in(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    text = f'[uplink]\nusername = "u"\npassword_file = "{tmp_path / "pw"}"\ntls = false\n'
    with pytest.raises(ConfigError) as err:
        _uplink(tmp_path, text)
    assert [str(i) for i in err.value.issues] == [
        f"{tmp_path / 'gridgate.toml'}: uplink.tls: false sends the MQTT password in clear text: "
        "remove tls = false (TLS is the default), or set allow_plaintext_password = true on a "
        "closed network"
    ]
    ok = _uplink(tmp_path, text + "allow_plaintext_password = true\n")
    assert ok.tls is None and ok.allow_plaintext_password


def test_check_config_refuses_plaintext_password_with_exit_78(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        GATEWAY.format(state=tmp_path / "state")
        + f'[uplink]\nusername = "u"\npassword_file = "{tmp_path / "pw"}"\ntls = false\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(cfg), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 78, proc.stdout + proc.stderr
    assert f"{cfg}: uplink.tls: false sends the MQTT password in clear text" in proc.stderr
    assert "s3cret" not in proc.stdout + proc.stderr


# -- against a real broker, as a process ---------------------------------------------------------


class Uplink:
    """``gridgate run uplink`` with its log in a file; rows put into its spool before it starts."""

    def __init__(self, tmp_path: Path, uplink: str, env: dict[str, str]) -> None:
        self.dir = tmp_path
        self.config = tmp_path / "gridgate.toml"
        self.config.write_text(GATEWAY.format(state=tmp_path / "state") + uplink)
        self.log = tmp_path / "uplink.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def produce(self, n: int) -> list[int]:
        (self.dir / "state").mkdir(exist_ok=True)
        sp = Spool(self.dir / "state" / "spool.sqlite")
        try:
            return sp.append_many([NewRow.from_body("grid", "summary", {"i": i}) for i in range(n)])
        finally:
            sp.close()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        env.update(PYTHONUNBUFFERED="1", **self.env)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "-c", str(self.config), "run", "uplink"],
                stdout=subprocess.DEVNULL,
                stderr=out,
                env=env,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.text().count(needle) >= count:
                return self.text()
            assert self.proc is not None and self.proc.poll() is None, self.text()
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} x{count} not logged within {timeout} s:\n{self.text()}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def _wait_published(runtime_dir: Path, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    doc: dict[str, object] = {}
    while time.monotonic() < deadline:
        doc = read_status(runtime_dir).get("uplink", {})
        if int(str(doc.get("published", 0))) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"uplink did not publish {n} rows: {doc}")


@pytest.fixture
def uplinks() -> Iterator[list[Uplink]]:
    started: list[Uplink] = []
    yield started
    for u in started:
        u.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_broker(tmp_path: Path, pki: Pki) -> Broker:
    b = Broker(tmp_path / "broker", tls=BrokerTls(pki.ca, pki.server.cert, pki.server.key))
    b.start()
    return b


def test_no_tls_settings_connects_with_tls_verified_by_the_system_store(
    tmp_path: Path, pki: Pki, uplinks: list[Uplink]
) -> None:
    b = _tls_broker(tmp_path, pki)
    rec = Recorder(b, tls=ClientTls(pki.ca))
    try:
        up = Uplink(tmp_path, f'[uplink]\nhost = "127.0.0.1"\nport = {b.port}\nkeepalive = 5\n', {
            "SSL_CERT_FILE": str(pki.ca)
        })  # fmt: skip
        uplinks.append(up)
        seqs = up.produce(5)
        up.start()
        rec.wait_for(set(seqs), timeout=30)
        assert WARNING not in up.text()
        assert up.stop() == 0
    finally:
        rec.close()
        b.stop()


def test_no_tls_settings_refuses_a_broker_the_system_store_does_not_trust(
    tmp_path: Path, pki: Pki, uplinks: list[Uplink]
) -> None:
    b = _tls_broker(tmp_path, pki)
    rec = Recorder(b, tls=ClientTls(pki.ca))
    try:
        up = Uplink(tmp_path, f'[uplink]\nhost = "127.0.0.1"\nport = {b.port}\nkeepalive = 5\n', {
            "SSL_CERT_FILE": str(pki.rogue_ca)
        })  # fmt: skip
        uplinks.append(up)
        up.produce(3)
        up.start()
        up.wait_log("certificate verify failed", timeout=30)
        assert rec.seqs() == []
    finally:
        rec.close()
        b.stop()


def test_plaintext_with_the_opt_in_runs_and_warns_once_per_start(
    tmp_path: Path, uplinks: list[Uplink]
) -> None:
    b = Broker(tmp_path / "broker", users={"gw": "pw-in-clear"})
    b.start()
    try:
        (tmp_path / "pw").write_text("pw-in-clear\n")
        up = Uplink(
            tmp_path,
            f'[uplink]\nhost = "127.0.0.1"\nport = {b.port}\nkeepalive = 5\ntls = false\n'
            f'username = "gw"\npassword_file = "{tmp_path / "pw"}"\n'
            "allow_plaintext_password = true\n",
            {},
        )
        uplinks.append(up)
        up.produce(3)
        up.start()
        up.wait_log("running uplink", timeout=30)
        _wait_published(tmp_path / "state" / "run", 3)  # the broker took the password
        assert up.text().count(WARNING) == 1
        assert "and the password" in up.text() and "pw-in-clear" not in up.text()
        assert up.proc is not None
        up.proc.send_signal(signal.SIGHUP)  # a reload is a start too
        up.wait_log("running uplink", timeout=30, count=2)
        assert up.text().count(WARNING) == 2
        assert up.stop() == 0
    finally:
        b.stop()


@pytest.mark.parametrize(
    ("uplink", "line"),
    [
        (
            '[uplink]\nhost = "b"\n',
            "  uplink: b:8883, TLS, broker verified by the system trust store",
        ),
        (
            '[uplink]\nhost = "b"\ntls = false\n',
            "  uplink: b:1883, PLAIN MQTT (tls = false): messages in clear text",
        ),
        ("[uplink]\nenabled = false\n", "  uplink: disabled"),
    ],
    ids=["tls-default", "plain", "disabled"],
)
def test_check_config_says_how_the_broker_is_reached(
    tmp_path: Path, uplink: str, line: str
) -> None:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(GATEWAY.format(state=tmp_path / "state") + uplink)
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "-c", str(cfg), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert line in proc.stdout.splitlines(), proc.stdout
