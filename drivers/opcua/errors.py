"""What can go wrong talking to an OPC UA server, as typed errors the daemon and CLI can name."""

from __future__ import annotations

from gateway.core.errors import DeviceError


class OpcUaError(DeviceError):
    """The server could not be reached, refused us, or a node could not be resolved."""


class UntrustedServerError(OpcUaError):
    """The server's certificate is not in our trust list (or is expired, or names another app)."""


class SubscriptionUnsupportedError(OpcUaError):
    """The server refused to create a subscription (then polling is the fallback)."""
