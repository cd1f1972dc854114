"""A raw TCP peer on loopback for Modbus tests: each request gets whatever ``reply`` returns.

``reply(request)`` returns the bytes to send, None to stay silent, or HANGUP to close the
connection. On leaving, the server waits for its handlers: the client has closed by then, so each
sees EOF and ends by itself; one that does not is a failure of the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

HANGUP: Final = b"<hang up>"

Reply = Callable[[bytes], bytes | None]


@contextlib.asynccontextmanager
async def raw_server(reply: Reply) -> AsyncIterator[int]:
    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        with contextlib.suppress(ConnectionError):
            while request := await reader.read(260):
                answer = reply(request)
                if answer is HANGUP:
                    break
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(srv.sockets[0].getsockname()[1])
    finally:
        srv.close()
        if handlers:
            _done, pending = await asyncio.wait(handlers, timeout=2.0)
            assert not pending, "a raw server handler did not end"
        await srv.wait_closed()
