"""Start on a spool that cannot be written yet: the runtime waits (logged once) and keeps
systemd's start timeout from killing it (EXTEND_TIMEOUT_USEC), READY coming only afterwards."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.core import runtime
from gateway.spool.opening import SpoolDiskFullError
from gateway.spool.store import Spool


async def test_waits_logs_once_and_extends_the_start_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    conf = tmp_path / "gridgate.toml"
    conf.write_text(
        f'[gateway]\nsite = "s"\nid = "g"\nstate_dir = "{tmp_path / "state"}"\n'
        '[spool]\n[uplink]\nhost = "127.0.0.1"\n'
    )
    config = load_config(conf, only="uplink")
    real = runtime.open_spool
    failures = [3]

    def flaky(cfg: object) -> Spool:
        if failures[0]:
            failures[0] -= 1
            raise SpoolDiskFullError("spool.sqlite: cannot open spool: database or disk is full")
        return real(cfg)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime, "open_spool", flaky)
    monkeypatch.setattr(runtime.Backoff, "next", lambda self: 0.01)
    sent: list[str] = []
    with caplog.at_level(logging.INFO, logger="gateway.core.runtime"):
        spool = await runtime.open_spool_when_usable(config, asyncio.Event(), sent.append)
    assert spool is not None
    spool.close()
    assert caplog.text.count("spool not writable, waiting") == 1
    assert "writable again, starting" in caplog.text
    assert len(sent) == 3 and all(s.startswith("EXTEND_TIMEOUT_USEC=") for s in sent)
    assert all("READY" not in s for s in sent)


async def test_stop_while_waiting_returns_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "gridgate.toml"
    conf.write_text(
        f'[gateway]\nsite = "s"\nid = "g"\nstate_dir = "{tmp_path / "state"}"\n'
        '[spool]\n[uplink]\nhost = "127.0.0.1"\n'
    )
    config = load_config(conf, only="uplink")

    def full(cfg: object) -> Spool:
        raise SpoolDiskFullError("disk full")

    monkeypatch.setattr(runtime, "open_spool", full)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, stop.set)
    assert await runtime.open_spool_when_usable(config, stop) is None
