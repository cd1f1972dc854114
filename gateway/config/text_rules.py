"""Typed rules for strings that reach log lines, status files, the resolver or a system call.

Like the rules of :mod:`gateway.config.rules` (one report at most, under the key's path; the
default, or None, on a problem), with the value shown as a TOML string, every control and
non-ASCII character escaped, so an error line can never be forged:

===============  ==========================================================================
plain_text       ``must be 1-255 characters without control characters, got "a\\nb"``
host_name        ``must be a host name or an IP address, got "broker example"``
===============  ==========================================================================
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any, overload

from gateway.config.issues import IssueSink, Required
from gateway.config.rules import _rule

__all__ = ["host_name", "is_host", "plain_text"]


# Characters that end, hide or reorder a line when a string reaches a log line, a status file or a
# system call: C0 and C1 controls (NUL cuts a path or host name short in the C library, a newline
# forges a log line, ESC drives the terminal), DEL, the Unicode line and paragraph separators and
# the bidirectional overrides and isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _quoted(value: str) -> str:
    """A string as a TOML basic string with every control and non-ASCII character escaped."""
    return json.dumps(value).replace("\x7f", "\\u007f")


@overload
def plain_text(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: str,
    *, max_len: int = 255,
) -> str: ...  # fmt: skip
@overload
def plain_text(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: Required | None, *, max_len: int = 255,
) -> str | None: ...  # fmt: skip
def plain_text(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: str | Required | None, *, max_len: int = 255,
) -> str | None:  # fmt: skip
    """A string of 1..``max_len`` characters without control characters (see ``_CONTROL``): a
    host, a device path, a user name that reaches log lines, status files and system calls."""

    def check(v: str) -> str | None:
        if 1 <= len(v) <= max_len and not _CONTROL.search(v):
            return None
        return f"must be 1-{max_len} characters without control characters, got {_quoted(v)}"

    value: str | None = _rule(sink, path, table, key, str, default, check)
    return value


# One DNS label (RFC 1123; _ as well, which private zones use): 1-63 characters, no - at the ends.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def is_host(value: str) -> bool:
    """A host name (RFC 1123, at most 253 characters, a final dot allowed), or an IPv4 or IPv6
    literal (an IPv6 one may be bracketed and carry a zone: ``[fe80::1%eth0]``)."""
    literal = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(literal)
        return True
    except ValueError:
        pass
    if literal is not value:
        return False  # brackets hold an IPv6 literal only
    name = value[:-1] if value.endswith(".") else value
    if not 1 <= len(name) <= 253:
        return False
    labels = name.split(".")
    # All-numeric dotted names are malformed IPv4 addresses ("10.0.0.256"), not host names.
    if all(label.isdigit() for label in labels):
        return False
    return all(_LABEL.fullmatch(label) for label in labels)


@overload
def host_name(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: str
) -> str: ...
@overload
def host_name(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str, default: Required | None
) -> str | None: ...
def host_name(
    sink: IssueSink, path: str, table: Mapping[str, Any], key: str,
    default: str | Required | None,
) -> str | None:  # fmt: skip
    """A host name or an IP literal (:func:`is_host`): a broker or PLC address."""

    def check(v: str) -> str | None:
        return None if is_host(v) else f"must be a host name or an IP address, got {_quoted(v)}"

    value: str | None = _rule(sink, path, table, key, str, default, check)
    return value
