"""Configuration: one TOML file plus drop-ins, validated as a whole before any I/O."""

from gateway.config.loader import DEFAULT_PATH, RawConfig, read_config
from gateway.config.schema import Config, load_config, load_or_report

__all__ = ["DEFAULT_PATH", "Config", "RawConfig", "load_config", "load_or_report", "read_config"]
