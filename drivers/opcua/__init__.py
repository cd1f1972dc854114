"""OPC UA driver: subscriptions (or polling) on a PLC, with security, trust list and reconnect."""

from drivers.opcua.client import OpcUaSource
from drivers.opcua.config import NodeConfig, OpcUaConfig, SecurityConfig, parse_opcua
from drivers.opcua.errors import OpcUaError, UntrustedServerError

__all__ = [
    "NodeConfig",
    "OpcUaConfig",
    "OpcUaError",
    "OpcUaSource",
    "SecurityConfig",
    "UntrustedServerError",
    "parse_opcua",
]
