"""Count every log record that carries a traceback, on the root logger, for the fuzz campaigns
(asyncio's "protocol.data_received() call failed" is one): a campaign's tally of tracebacks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.count += 1
            self.messages.append(f"{record.name}: {record.getMessage()}")


@contextlib.contextmanager
def counting_tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
