"""Secured endpoints: the three policies with certificates and a user login, and an untrusted
server refused before the password is sent. Certificates are made with asyncua's own helpers."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.opcua.client import OpcUaSource
from drivers.opcua.config import OpcUaConfig, parse_opcua
from drivers.opcua.errors import OpcUaError, UntrustedServerError
from gateway.config.issues import IssueSink
from gateway.core.model import Quality
from gateway.sim.plant import PlantModel
from gateway.sim.plant_server import APPLICATION_URI, PlantServer, ServerSecurity

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[PlantServer, Path]]:
    d = tmp_path_factory.mktemp("pki")
    for sub in ("trust", "other"):
        (d / sub).mkdir()
    await setup_self_signed_certificate(
        d / "srv.pem", d / "trust" / "srv.der", APPLICATION_URI, "127.0.0.1",
        [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": "plant"},
    )  # fmt: skip
    await setup_self_signed_certificate(
        d / "cli.pem", d / "cli.der", "urn:gridgate:client", socket.gethostname(),
        [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "gridgate"},
    )  # fmt: skip
    # A different server's certificate: a trust list that is not empty but does not fit.
    await setup_self_signed_certificate(
        d / "rogue.pem", d / "other" / "rogue.der", APPLICATION_URI, "127.0.0.1",
        [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": "rogue"},
    )  # fmt: skip
    (d / "pw").write_text("s3cret\n")
    (d / "wrong").write_text("guess\n")
    security = ServerSecurity(
        d / "trust" / "srv.der",
        d / "srv.pem",
        (
            ("Basic256Sha256", "SignAndEncrypt"),
            ("Aes128_Sha256_RsaOaep", "SignAndEncrypt"),
            ("Aes256_Sha256_RsaPss", "SignAndEncrypt"),
            ("Basic256Sha256", "Sign"),
        ),
        allow_none=False,
        users={"op": "s3cret"},
    )
    model = PlantModel("gas_turbine", seed=2, dispatch=False, running=True)
    server = PlantServer(model=model, security=security)
    await server.start()
    yield server, d
    await server.stop()


def config(server: PlantServer, d: Path, policy: str, mode: str, **over: str) -> OpcUaConfig:
    table = {
        "endpoint": server.url,
        "security_policy": policy,
        "security_mode": mode,
        "certificate": str(d / "cli.der"),
        "private_key": str(d / "cli.pem"),
        "trust_dir": str(d / "trust"),
        "username": "op",
        "password_file": str(d / "pw"),
        "nodes": [{"name": "power", "node_id": server.node_id("power")}],
        **over,
    }
    sink = IssueSink("t.toml")
    cfg = parse_opcua(sink, table)
    sink.raise_if_any()
    assert cfg is not None
    return cfg


@pytest.mark.parametrize(
    ("policy", "mode"),
    [
        ("Basic256Sha256", "SignAndEncrypt"),
        ("Aes128_Sha256_RsaOaep", "SignAndEncrypt"),
        ("Aes256_Sha256_RsaPss", "SignAndEncrypt"),
        ("Basic256Sha256", "Sign"),
    ],
)
async def test_secured_endpoint_with_certificates_and_login(
    secured: tuple[PlantServer, Path], policy: str, mode: str
) -> None:
    server, d = secured
    frame = await OpcUaSource(config(server, d, policy, mode)).read_once()
    assert frame.quality[0] == Quality.GOOD
    assert frame.values[0] == pytest.approx(server.model.last["power"], rel=0.05)


@pytest.mark.parametrize("trust", ["other", "empty"])
async def test_untrusted_server_is_refused_with_a_clear_error(
    secured: tuple[PlantServer, Path], trust: str
) -> None:
    server, d = secured
    (d / "empty").mkdir(exist_ok=True)
    cfg = config(server, d, "Basic256Sha256", "SignAndEncrypt", trust_dir=str(d / trust))
    with pytest.raises(UntrustedServerError) as err:
        await OpcUaSource(cfg).read_once()
    text = str(err.value)
    assert "not trusted" in text and str(d / trust) in text and "thumbprint" in text


async def test_wrong_password_is_refused(secured: tuple[PlantServer, Path]) -> None:
    server, d = secured
    cfg = config(server, d, "Basic256Sha256", "SignAndEncrypt", password_file=str(d / "wrong"))
    with pytest.raises(OpcUaError) as err:
        await OpcUaSource(cfg).read_once()
    assert not isinstance(err.value, UntrustedServerError)
    assert "Bad" in str(err.value)
