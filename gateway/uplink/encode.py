"""Turning a spool row into the bytes published upstream.

The forwarder only knows the :class:`Encoder` protocol; plain JSON is here, Sparkplug B comes
later behind the same interface.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from gateway.core.errors import GatewayError
from gateway.spool.store import SpoolRow


class EncodeError(GatewayError):
    """A spool row cannot be encoded (its payload is not a JSON object)."""


@dataclass(frozen=True)
class EncodeContext:
    """Who is speaking: the identity every message carries."""

    site: str
    gateway: str


class Encoder(Protocol):
    content_type: str

    def encode(self, msg: SpoolRow, ctx: EncodeContext) -> bytes: ...


class JsonEncoder:
    """Compact JSON: ``{"seq", "ts", "daemon", "kind", "site", "gateway", "body"}``.

    NaN and infinities (a BAD sample is NaN) become ``null``: JSON has no such numbers and
    strict upstream parsers reject the whole message otherwise.
    """

    content_type = "application/json"

    def encode(self, msg: SpoolRow, ctx: EncodeContext) -> bytes:
        try:
            body = json.loads(msg.payload, parse_constant=lambda _name: None)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EncodeError(f"spool row {msg.seq} ({msg.daemon}/{msg.kind}): {exc}") from exc
        if not isinstance(body, dict):
            raise EncodeError(
                f"spool row {msg.seq} ({msg.daemon}/{msg.kind}): payload is "
                f"{type(body).__name__}, expected a JSON object"
            )
        doc = {
            "seq": msg.seq,
            "ts": msg.ts,
            "daemon": msg.daemon,
            "kind": msg.kind,
            "site": ctx.site,
            "gateway": ctx.gateway,
            "body": body,
        }
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
