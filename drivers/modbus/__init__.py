"""Modbus TCP/RTU: register maps, read plans, decoding, sources."""
