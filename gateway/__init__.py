"""gridgate: asyncio daemons for energy-system edge gateways."""

from gateway._version import __version__

__all__ = ["__version__"]
