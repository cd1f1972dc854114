"""The typed error hierarchy: every failure the daemons can name has a class here."""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Base of every error gridgate raises on purpose."""


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One problem found in a config: where it is and why it is wrong.

    Rendered as ``FILE: key.path: reason`` so a technician can jump to it.
    """

    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}: {where}{self.reason}"


class ConfigError(GatewayError):
    """The configuration cannot be used; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class DeviceError(GatewayError):
    """A field device did not answer, answered garbage or refused the request."""


class NativeError(GatewayError):
    """A C kernel returned a failure status or the compiled module does not match."""


class SpoolError(GatewayError):
    """The durable spool cannot take or give rows."""


class SpoolFullError(SpoolError):
    """The spool is at its size bound and its policy is to reject new rows."""
