"""Closing one asyncua client completely, whatever state its connection is in."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.ua.uaerrors import UaError

_log = logging.getLogger(__name__)

_TEARDOWN_TIMEOUT: Final = 2.0


async def teardown(client: Client, subscription: Subscription | None) -> None:
    """Close everything of one client; never raises (the connection may be half dead)."""
    client.connection_lost_callback = None
    if subscription is not None:
        try:
            await asyncio.wait_for(subscription.delete(), _TEARDOWN_TIMEOUT)
        except (OSError, TimeoutError, UaError, ConnectionError) as exc:
            _log.debug("opcua: deleting the subscription failed: %s", exc)
    try:
        # close_session also stops the client's watchdog, supervisor and renew tasks.
        await asyncio.wait_for(client.close_session(), _TEARDOWN_TIMEOUT)
    except (OSError, TimeoutError, UaError, ConnectionError) as exc:
        _log.debug("opcua: closing the session failed: %s", exc)
    try:
        await asyncio.wait_for(client.close_secure_channel(), _TEARDOWN_TIMEOUT)
    except (OSError, TimeoutError, UaError, ConnectionError) as exc:
        _log.debug("opcua: closing the channel failed: %s", exc)
    client.disconnect_socket()


__all__ = ["teardown"]
