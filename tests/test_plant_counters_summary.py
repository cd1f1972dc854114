"""A summary never reports maintenance counters that are not on disk yet.

Found by the plant's kill -9 campaign: the counters were saved every ``save_every_s`` only, so a
kill after a summary left the file behind what upstream had seen, and the restarted daemon reported
fewer operating hours than before (0.0419 h, then 0.0411 h). Now the counters are saved before a
summary is committed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gateway.config import load_config
from gateway.core.notify import Heartbeats
from gateway.core.runtime import DaemonContext
from gateway.plant.daemon import PlantDaemon, build
from gateway.sim.plant_bench_config import plant_bench_config
from gateway.sim.plant_server import PlantServer
from gateway.sim.toml_text import dumps
from gateway.spool.store import AsyncSpool, Spool
from tests.test_plant_daemon import SPEED, Running, plant


async def test_counters_in_a_summary_are_saved_before_it_is_committed(tmp_path: Path) -> None:
    async with PlantServer(model=plant(), speed=SPEED, tick=0.1) as server:
        # A save interval far longer than the test: only the summary can have saved them.
        cfg = plant_bench_config(tmp_path / "state", server.url, SPEED, save_every_s=3600)
        (tmp_path / "gridgate.toml").write_text(dumps(cfg))
        config = load_config(tmp_path / "gridgate.toml", env={})
        spool = Spool(tmp_path / "spool.sqlite", max_bytes=50_000_000)
        daemon = build(DaemonContext(config, AsyncSpool(spool), Heartbeats()))
        assert isinstance(daemon, PlantDaemon)
        tasks = [asyncio.create_task(f()) for f, _a in daemon.loops().values()]
        try:
            r = Running(daemon, spool, server)
            await r.until(
                "a summary with operating hours",
                lambda: any(b["counters"]["operating_hours"] > 0 for b in r.rows("summary")),
            )
            shown = max(b["counters"]["operating_hours"] for b in r.rows("summary"))
            saved = json.loads((tmp_path / "state" / "plant-counters.json").read_text())
            assert saved["operating_hours"] >= shown - 1e-4, (saved, shown)  # rounded in the row
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            spool.close()
