"""The uplink over TLS against a real mosquitto TLS listener, with certificates made by openssl.

The PKI is made once per module: a CA the gateway trusts, a server certificate for 127.0.0.1 and
localhost (subjectAltName, which is what a TLS client checks), a client certificate, a server
certificate from another CA, and one for a host name that is not the one dialled. Delivery is
checked by ``seq`` against what was spooled; refusals by the error text and an untouched spool.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.core.backoff import Backoff
from gateway.spool.store import NewRow, Spool
from gateway.uplink.encode import JsonEncoder
from gateway.uplink.forwarder import Forwarder
from gateway.uplink.mqtt import MqttError, MqttSession, MqttSettings
from tests.mosquitto import Broker, BrokerTls, ClientTls, Recorder

SITE, GW = "tls-site", "gw1"


# -- the PKI --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA the gateway and the subscriber trust
    server: KeyPair  # by ca, for 127.0.0.1 and localhost
    client: KeyPair  # by ca, clientAuth
    rogue_ca: Path
    rogue_server: KeyPair  # by rogue_ca, for 127.0.0.1 and localhost
    otherhost: KeyPair  # by ca, for "otherhost" only


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _make_ca(d: Path, name: str) -> KeyPair:
    pair = KeyPair(d / f"{name}.crt", d / f"{name}.key")
    _openssl(
        "req", "-x509", *_EC, "-keyout", str(pair.key), "-out", str(pair.cert),
        "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return pair


def _issue(d: Path, ca: KeyPair, name: str, cn: str, san: str | None, usage: str) -> KeyPair:
    pair = KeyPair(d / f"{name}.crt", d / f"{name}.key")
    csr, ext = d / f"{name}.csr", d / f"{name}.ext"
    _openssl("req", "-new", *_EC, "-keyout", str(pair.key), "-out", str(csr), "-subj", f"/CN={cn}")
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        f"extendedKeyUsage={usage}",
        "authorityKeyIdentifier=keyid",
        "subjectKeyIdentifier=hash",
    ]
    if san:
        lines.append(f"subjectAltName={san}")
    ext.write_text("\n".join(lines) + "\n")
    serial = f"0x{int(time.time_ns()):x}"
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-set_serial", serial, "-days", "2", "-out", str(pair.cert), "-extfile", str(ext),
    )  # fmt: skip
    return pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def make_pki(d: Path) -> Pki:
    """The test PKI in ``d`` (also used by tests/test_uplink_secure_default.py)."""
    if shutil.which("openssl") is None:
        pytest.fail(
            "the openssl command is needed to make test certificates: apt-get install openssl"
        )
    ca, rogue = _make_ca(d, "ca"), _make_ca(d, "rogue-ca")
    local = "IP:127.0.0.1,DNS:localhost"
    return Pki(
        ca=ca.cert,
        server=_issue(d, ca, "server", "127.0.0.1", local, "serverAuth"),
        client=_issue(d, ca, "client", "gw1", None, "clientAuth"),
        rogue_ca=rogue.cert,
        rogue_server=_issue(d, rogue, "rogue-server", "127.0.0.1", local, "serverAuth"),
        otherhost=_issue(d, ca, "otherhost", "otherhost", "DNS:otherhost", "serverAuth"),
    )


def test_pki_is_what_the_tests_assume(pki: Pki) -> None:
    # independent of Python's ssl: openssl itself must agree on who signed what
    _openssl("verify", "-CAfile", str(pki.ca), str(pki.server.cert), str(pki.client.cert))
    _openssl("verify", "-CAfile", str(pki.rogue_ca), str(pki.rogue_server.cert))
    mismatch = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.ca), str(pki.rogue_server.cert)],
        capture_output=True,
        check=False,
    )
    assert mismatch.returncode != 0


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    started: list[Broker] = []

    def start(server: KeyPair, ca: Path, *, require_certificate: bool = False) -> Broker:
        tls = BrokerTls(ca, server.cert, server.key, require_certificate)
        b = Broker(tmp_path / f"broker{len(started)}", tls=tls)
        started.append(b)
        b.start()
        return b

    yield start
    for b in started:
        b.stop()


def _settings(b: Broker, **kw: object) -> MqttSettings:
    paths = {k: str(v) if isinstance(v, Path) else v for k, v in kw.items()}
    return MqttSettings(host=b.host, port=b.port, keepalive=10, connect_timeout=3.0, **paths)  # type: ignore[arg-type]


def _produce(sp: Spool, n: int) -> list[int]:
    return sp.append_many([NewRow.from_body("grid", "summary", {"i": i}) for i in range(n)])


async def _until(cond: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _deliver(b: Broker, settings: MqttSettings, sub: ClientTls, tmp_path: Path) -> None:
    """Spool rows, forward them, and check the subscriber got each once, in seq order."""
    rec = Recorder(b, f"gridgate/{SITE}/{GW}/#", tls=sub)
    tmp_path.mkdir(exist_ok=True)
    sp = Spool(tmp_path / "spool.db")
    produced = _produce(sp, 60)
    fwd = Forwarder(sp, settings, JsonEncoder(), SITE, GW, inflight=10)
    task = asyncio.create_task(fwd.run())
    try:
        got = await asyncio.to_thread(rec.wait_for, set(produced), 10)
        # the spool commits the delete in a worker thread before the forwarder counts it
        await _until(lambda: sp.depth() == 0 and fwd.published >= len(produced), 5)
        assert fwd.state == "connected" and fwd.published == len(produced)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        rec.close()
        sp.close()
    assert got == produced  # every row once, in order


async def _refused(
    b: Broker, settings: MqttSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> str:
    """One session refused, then a forwarder that keeps retrying and deletes nothing; its error."""
    with pytest.raises(MqttError) as err:
        await MqttSession(settings).connect()
    caplog.set_level(logging.DEBUG, logger="gateway.uplink")
    tmp_path.mkdir(exist_ok=True)
    sp = Spool(tmp_path / "spool.db")
    produced = _produce(sp, 5)
    fwd = Forwarder(sp, settings, JsonEncoder(), SITE, GW, backoff=Backoff(0.05, 0.2))
    task = asyncio.create_task(fwd.run())
    try:
        await _until(lambda: fwd.failures >= 4, 5)
        assert not task.done() and fwd.state in ("backoff", "connecting")
        assert fwd.published == 0 and sp.depth() == len(produced)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sp.close()
    reopened = Spool(tmp_path / "spool.db")  # what is on disk, not the forwarder's view
    assert reopened.depth() == len(produced)
    reopened.close()
    loud = [
        r.getMessage()
        for r in caplog.records
        if r.name == "gateway.uplink.forwarder" and r.levelno >= logging.WARNING
    ]
    assert len(loud) == 1, loud  # one line for the outage, not one per retry
    assert settings.where in loud[0] and "retrying" in loud[0]
    return str(err.value) + "\n" + loud[0]


# -- (a) server-authenticated TLS ------------------------------------------------------------------


async def test_server_auth_tls_delivers_in_order(
    pki: Pki, tls_broker: Callable[..., Broker], tmp_path: Path
) -> None:
    b = tls_broker(pki.server, pki.ca)
    settings = _settings(b, ca_file=pki.ca, client_id="fwd-tls-a")
    assert settings.tls and settings.where.startswith("mqtts://")
    await _deliver(b, settings, ClientTls(pki.ca), tmp_path)
    # the listener speaks TLS only: the same broker over plain MQTT gets nowhere
    with pytest.raises(MqttError):
        await MqttSession(_settings(b, client_id="plain")).connect()


# -- (b) mutual TLS -------------------------------------------------------------------------------


async def test_mutual_tls_delivers_with_client_certificate(
    pki: Pki, tls_broker: Callable[..., Broker], tmp_path: Path
) -> None:
    b = tls_broker(pki.server, pki.ca, require_certificate=True)
    mine = {"cert_file": pki.client.cert, "key_file": pki.client.key}
    settings = _settings(b, ca_file=pki.ca, client_id="fwd-tls-b", **mine)
    sub = ClientTls(pki.ca, pki.client.cert, pki.client.key)
    await _deliver(b, settings, sub, tmp_path)


async def test_mutual_tls_without_client_certificate_is_refused_and_retried(
    pki: Pki, tls_broker: Callable[..., Broker], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = tls_broker(pki.server, pki.ca, require_certificate=True)
    error = await _refused(b, _settings(b, ca_file=pki.ca), tmp_path, caplog)
    # the broker's TLS alert, not a bare "connection lost"
    assert error.count("certificate required") == 2, error


# -- (c) a server certificate from a CA the gateway does not trust --------------------------------


async def test_untrusted_server_certificate_is_refused_and_nothing_deleted(
    pki: Pki, tls_broker: Callable[..., Broker], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = tls_broker(pki.rogue_server, pki.rogue_ca)
    # a subscriber that trusts the rogue CA sees whether anything got through
    rec = Recorder(b, "gridgate/#", tls=ClientTls(pki.rogue_ca))
    try:
        error = await _refused(b, _settings(b, ca_file=pki.ca), tmp_path, caplog)
        await asyncio.sleep(0.2)
        assert rec.snapshot() == []
    finally:
        rec.close()
    assert error.count("certificate verify failed") == 2, error


# -- (d) tls_insecure and a certificate for another host name --------------------------------------


async def test_hostname_mismatch_refused_unless_tls_insecure(
    pki: Pki, tls_broker: Callable[..., Broker], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = tls_broker(pki.otherhost, pki.ca)
    error = await _refused(b, _settings(b, ca_file=pki.ca), tmp_path / "strict", caplog)
    assert error.count("certificate verify failed") == 2, error
    assert "127.0.0.1" in error and "mismatch" in error

    insecure = _settings(b, ca_file=pki.ca, tls_insecure=True, client_id="fwd-tls-d")
    # the subscriber needs the same leniency for a certificate naming another host
    await _deliver(b, insecure, ClientTls(pki.ca, insecure=True), tmp_path / "insecure")


async def test_tls_insecure_still_verifies_the_chain(
    pki: Pki, tls_broker: Callable[..., Broker]
) -> None:
    b = tls_broker(pki.rogue_server, pki.rogue_ca)
    with pytest.raises(MqttError, match="certificate verify failed"):
        await MqttSession(_settings(b, ca_file=pki.ca, tls_insecure=True)).connect()
