"""OPC UA driver: subscriptions (or polling) on a PLC, with security, trust list and reconnect.

Import the submodules (``drivers.opcua.client``, ``.config``, ...): this package imports nothing
itself, so that ``drivers.opcua.scan_cli`` and ``.policies`` stay free of asyncua.
"""
