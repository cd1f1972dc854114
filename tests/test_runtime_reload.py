"""Reload in-process: a failure after the daemons stopped brings the previous config back, whatever
the failure is (the process-level cases, a file as state_dir and a directory as the spool, are in
``hil_tests/test_reload.py``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.core import runtime
from gateway.core.runtime import DaemonContext, Runtime
from gateway.sim.broker import free_port


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "gridgate.toml"
    cfg.write_text(
        f'[gateway]\nsite = "s"\nid = "g"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[uplink]\nhost = "127.0.0.1"\nport = {free_port()}\ntls = false\n'  # nobody listens
    )
    return cfg


def test_a_daemon_that_fails_to_build_on_reload_brings_the_old_config_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _config(tmp_path)
    built: list[str] = []
    real_build = runtime.build_daemon

    def build(name: str, ctx: DaemonContext) -> runtime.Daemon:
        built.append(name)
        if len(built) == 2:  # the reload's build
            raise RuntimeError("a bug in the new daemon's wiring")
        return real_build(name, ctx)

    monkeypatch.setattr(runtime, "build_daemon", build)
    rt = Runtime(cfg, "uplink")

    async def drive() -> int:
        task = asyncio.create_task(rt.run(load_config(cfg, only="uplink")))
        while len(built) < 1:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        rt._reload.set()
        while len(built) < 3:  # the failed build, then the previous config again
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert not task.done()
        rt._stop.set()
        return await asyncio.wait_for(task, 20)

    with caplog.at_level(logging.INFO, logger="gateway.core.runtime"):
        assert asyncio.run(drive()) == 0
    assert built == ["uplink", "uplink", "uplink"]
    failed = [r for r in caplog.records if "reload failed" in r.getMessage()]
    assert len(failed) == 1 and "a bug in the new daemon's wiring" in failed[0].getMessage()
    assert failed[0].exc_info is not None  # an unexpected error keeps its traceback, once
