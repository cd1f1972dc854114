"""A cell board that goes silent is one board alarm (and one log line), not a stale alarm raised
and cleared for each of its cells: the daemon in-process against the rack simulator on ptys."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.native.cells_config import CellsConfig
from tests.test_bms_daemon import CELLS, running

STALE_S = CellsConfig().stale_s


async def test_board_outage_is_one_board_alarm_not_one_per_cell(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running(tmp_path, "advisory") as r:
        await r.until("ten cycles", lambda: r.cycles >= 10)
        assert r.rows("alarm") == []
        r.sim.set_silent(4)  # line l1, address 2
        await r.until("board lost", lambda: bool(r.alarms("device_lost", "raised")))
        await asyncio.sleep(STALE_S + 1.0)  # the cells' readings are now older than stale_s
        stale = [a["point"] for a in r.rows("alarm") if a["alarm"] == "cell_stale"]
        assert stale == [], f"{len(stale)} cell alarms for one board outage"
        r.sim.set_silent(4, False)
        await r.until("board back", lambda: bool(r.alarms("device_lost", "cleared")))
        n1 = r.cycles
        await r.until("cells fresh again", lambda: r.cycles >= n1 + 15)
        rows = r.rows("alarm")
    assert [(a["alarm"], a["state"], a["device"]) for a in rows] == [
        ("device_lost", "raised", "l1/2"),
        ("device_lost", "cleared", "l1/2"),
    ], f"{len(rows)} alarm rows, {CELLS} cells on the board"
    logged = [m for m in (rec.getMessage() for rec in caplog.records) if ": alarm " in m]
    assert len(logged) == 2, logged
    # The whole journal of the outage: the driver's line with its cause and the board alarm,
    # each once when it starts and once when it ends.
    journal = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO and "opened" not in r.getMessage()
    ]
    assert len(journal) == 4, journal
    assert journal[0].startswith("line l1 board 2: no sample (timeout")


async def test_a_stale_cell_on_an_answering_board_still_alarms(tmp_path: Path) -> None:
    """Folding into the board alarm must not hide a cell whose own reading goes missing."""
    async with running(tmp_path, "advisory") as r:
        await r.until("ten cycles", lambda: r.cycles >= 10)
        r.sim.set_open_wire(3)  # board 0 keeps answering; cell 3's reading becomes unusable
        await r.until(
            "a cell alarm on board l0/1",
            lambda: any(
                a["device"] == "l0/1" and a["alarm"].startswith("cell_") for a in r.rows("alarm")
            ),
        )
