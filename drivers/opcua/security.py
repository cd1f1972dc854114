"""Client security: policy and mode, our certificate and key, the server trust list, user login.

The trust list is a directory of server certificates (``*.der`` / ``*.pem``). A server is trusted
when its exact certificate is in the directory (self-signed PLC certificates, the common case) or
when it chains to a CA certificate there. The check runs in asyncua's ``certificate_validator``
hook during CreateSession, i.e. *before* ActivateSession sends the user name and password, so a
rogue server never sees them.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.utils import ServiceError
from asyncua.crypto import security_policies, uacrypto
from asyncua.crypto.truststore import TrustStore
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from drivers.opcua.config import SecurityConfig
from drivers.opcua.errors import OpcUaError

_log = logging.getLogger(__name__)

_POLICY_CLASSES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
    "Basic128Rsa15": security_policies.SecurityPolicyBasic128Rsa15,
    "Basic256": security_policies.SecurityPolicyBasic256,
}
# asyncua's server-side enum spells the policies without underscores.
_SERVER_NAMES = {
    "Basic256Sha256": "Basic256Sha256",
    "Aes128_Sha256_RsaOaep": "Aes128Sha256RsaOaep",
    "Aes256_Sha256_RsaPss": "Aes256Sha256RsaPss",
    "Basic128Rsa15": "Basic128Rsa15",
    "Basic256": "Basic256",
}


def policy_class(name: str) -> type[security_policies.SecurityPolicy]:
    return _POLICY_CLASSES[name]


def server_policy_type(policy: str, mode: str) -> ua.SecurityPolicyType:
    """The asyncua server enum for a (policy, mode) pair as spelled in the config."""
    if policy == "None":
        return ua.SecurityPolicyType.NoSecurity
    return ua.SecurityPolicyType[f"{_SERVER_NAMES[policy]}_{mode}"]


def thumbprint(cert: x509.Certificate) -> str:
    """SHA-1 of the DER certificate, the way OPC UA tools show it (identification, not security)."""
    return hashlib.sha1(cert.public_bytes(Encoding.DER), usedforsecurity=False).hexdigest()


def describe(cert: x509.Certificate) -> str:
    return f"subject {cert.subject.rfc4514_string()!r}, thumbprint {thumbprint(cert)}"


def application_uri_of(cert: x509.Certificate) -> str | None:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


class TrustListValidator:
    """asyncua ``certificate_validator``: refuse servers whose certificate we do not trust.

    asyncua turns the ServiceError raised here into a ``UaStatusCodeError``; :attr:`refusal` keeps
    the human-readable reason so the driver can raise an :class:`UntrustedServerError` naming
    the certificate and the directory.
    """

    def __init__(self, trust_dir: Path) -> None:
        self.trust_dir = trust_dir
        self.refusal: str | None = None
        self._pinned: set[bytes] = set()
        self._store: TrustStore | None = None

    async def load(self) -> None:
        """(Re)read the directory: a certificate copied in is trusted at the next connect."""
        self._pinned.clear()
        for path in sorted(self.trust_dir.glob("*")):
            if path.suffix.lower() not in (".der", ".pem", ".crt"):
                continue
            try:
                cert = await uacrypto.load_certificate(path)
            except ValueError as exc:
                _log.warning(
                    "opcua: skipping unreadable certificate %s in trust list: %s", path, exc
                )
                continue
            self._pinned.add(cert.public_bytes(Encoding.DER))
        # asyncua's store refuses to be built empty; an empty trust list simply trusts nobody.
        self._store = TrustStore([self.trust_dir], []) if self._pinned else None
        if self._store is not None:
            await self._store.load()

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        self.refusal = None
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            self.refusal = (
                f"server certificate is outside its validity ({cert.not_valid_before_utc:%Y-%m-%d}"
                f" .. {cert.not_valid_after_utc:%Y-%m-%d}): {describe(cert)}"
            )
            raise ServiceError(StatusCodes.BadCertificateTimeInvalid)
        if cert.public_bytes(Encoding.DER) in self._pinned:
            return
        if self._chains_to_ca(cert):
            return
        self.refusal = (
            f"server certificate is not trusted: {describe(cert)} "
            f"(application {app.ApplicationUri!r}); it is neither in nor signed by a CA in "
            f"{self.trust_dir}. If this is the right PLC, copy its certificate there"
        )
        raise ServiceError(StatusCodes.BadCertificateUntrusted)

    def _chains_to_ca(self, cert: x509.Certificate) -> bool:
        if self._store is None:
            return False
        try:
            return self._store.is_trusted(cert)
        except (ValueError, x509.verification.VerificationError):
            return False


async def configure(client: Client, security: SecurityConfig) -> TrustListValidator | None:
    """Apply ``security`` to a fresh ``client`` (before connect); returns the validator if any."""
    if security.username is not None:
        client.set_user(security.username)
        if security.password is not None:
            client.set_password(security.password.reveal())
    if not security.enabled:
        return None
    if security.certificate is None or security.private_key is None:
        raise OpcUaError(f"security policy {security.policy} needs a certificate and a key")
    cert = await uacrypto.load_certificate(security.certificate)
    client.application_uri = security.application_uri or application_uri_of(cert) or ""
    validator: TrustListValidator | None = None
    if security.trust_dir is not None:
        validator = TrustListValidator(security.trust_dir)
        await validator.load()
        client.certificate_validator = validator
    else:
        _log.warning("opcua: no trust_dir: any server certificate is accepted (allow_insecure)")
    password = security.private_key_password.reveal() if security.private_key_password else None
    mode = getattr(ua.MessageSecurityMode, security.mode)
    await client.set_security(
        policy_class(security.policy),
        str(security.certificate),
        str(security.private_key),
        private_key_password=password,
        mode=mode,
    )
    return validator


__all__ = [
    "TrustListValidator",
    "application_uri_of",
    "configure",
    "describe",
    "policy_class",
    "server_policy_type",
    "thumbprint",
]
