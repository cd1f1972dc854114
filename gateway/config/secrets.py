"""Secrets (MQTT password, key passphrases) come from a file or a systemd credential, never from
the TOML itself, and never reach a log line: :class:`Secret` hides its value in repr and str."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config.issues import IssueSink, check_keys, join, take


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def credential_path(name: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Where systemd put a ``LoadCredential=`` file, or None outside a unit that has one."""
    base = (env if env is not None else os.environ).get("CREDENTIALS_DIRECTORY")
    return Path(base) / name if base else None


def read_secret(
    sink: IssueSink,
    path: str,
    table: Mapping[str, Any],
    stem: str,
    env: Mapping[str, str] | None = None,
    *,
    read: bool = True,
) -> Secret | None:
    """Resolve ``<stem>_file`` or ``<stem>_credential`` of ``table``; both set is an error.

    A plain ``<stem> = "..."`` is refused: a password in a config file ends up in backups and
    support tickets. With ``read=False`` the keys are checked but nothing is read and None comes
    back: for commands that never use the secret (status, points), where only the uplink's unit
    has the credential.
    """
    if stem in table:
        sink.error(
            join(path, stem),
            f"secrets are not written inline; use {stem}_file or {stem}_credential",
        )
    file_key, cred_key = f"{stem}_file", f"{stem}_credential"
    file_name = take(sink, path, table, file_key, str, None)
    cred_name = take(sink, path, table, cred_key, str, None)
    if file_name is not None and cred_name is not None:
        sink.error(join(path, cred_key), f"set either {file_key} or {cred_key}, not both")
        return None
    if cred_name is not None:
        where = join(path, cred_key)
        if not _CREDENTIAL_NAME.match(cred_name) or cred_name in {".", ".."}:
            # systemd's credential names are file names in one directory: no path escapes it.
            sink.error(where, "must be a credential name (A-Z a-z 0-9 _ . - @, no slash)")
            return None
        if not read:
            return None
        source = credential_path(cred_name, env)
        if source is None:
            sink.error(
                where,
                "CREDENTIALS_DIRECTORY is not set (not started by systemd with LoadCredential=)",
            )
            return None
    elif file_name is not None:
        where = join(path, file_key)
        if not file_name.strip():
            sink.error(where, "must not be empty")
            return None
        if _CONTROL.search(file_name):
            sink.error(where, "must not contain control characters")
            return None
        source = Path(file_name)
        if not source.is_absolute():
            # Relative to the working directory: "/" under systemd, anywhere by hand; the check
            # and the daemon would read two different files.
            sink.error(where, f"must be an absolute path, got {file_name!r}")
            return None
    else:
        return None
    return _read(sink, where, source) if read else None


_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,255}$")
_MAX_BYTES = 64 * 1024  # a password or passphrase, not /dev/zero
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _read(sink: IssueSink, where: str, source: Path) -> Secret | None:
    """The secret in ``source``: UTF-8 text without NUL bytes, one trailing newline dropped."""
    try:
        if source.exists() and not source.is_file():
            # A FIFO blocks the check forever, /dev/zero never ends: a secret is a plain file.
            sink.error(where, f"secret file {source} is not a regular file")
            return None
        with source.open("rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
    except OSError as exc:
        sink.error(where, f"cannot read secret from {source}: {exc.strerror or exc}")
        return None
    if len(data) > _MAX_BYTES:
        sink.error(where, f"secret file {source} is larger than {_MAX_BYTES // 1024} KiB")
        return None
    if b"\x00" in data:
        # A NUL ends the string in C (the MQTT client, OpenSSL): the broker would see another one.
        sink.error(where, f"secret file {source} contains a NUL byte")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        sink.error(where, f"secret file {source} is not UTF-8 text")
        return None
    value = text.rstrip("\r\n")
    if not value:
        sink.error(where, f"secret file {source} is empty")
        return None
    return Secret(value)


def allowed_secret_keys(stem: str) -> set[str]:
    return {stem, f"{stem}_file", f"{stem}_credential"}


__all__ = ["Secret", "allowed_secret_keys", "check_keys", "credential_path", "read_secret"]
