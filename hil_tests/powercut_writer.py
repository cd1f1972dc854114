"""A field daemon's write path at full speed, reporting every row once its commit has returned.

The power-cut campaign (``test_power_cut.py``) needs a producer that commits often, so that cuts
land inside commits, checkpoints and WAL resets, and that says exactly which rows it was told were
committed. The grid daemon commits once per summary window (at least 1 s, aligned to the wall
clock; 3 s on the bench), so between cuts 0.2-2.5 s apart it would mostly commit nothing. This
process takes the same path the daemons do: the config loaded and validated by the same loader,
the spool opened by the runtime's ``open_spool`` (its ``synchronous``, bound and policy), an
:class:`AsyncSpool` and an :class:`Outbox` whose ``put_summaries`` is the grid daemon's call.

Every ``INTERVAL`` it puts a batch of 1-4 summaries ``{"device": "pc", "run": RUN, "i": N}``.
Once ``put_summaries`` has returned with nothing left pending in the outbox, every row handed
over so far is committed, and only then is a line ``committed RUN A B`` (rows ``A..B``) written
to stdout (a file on the real disk, outside the mount): a SIGKILL or a cut may lose the line of
a committed batch, never report a batch that was not committed.

Run: ``python -m hil_tests.powercut_writer CONFIG RUN``.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path

from gateway.config import load_or_report
from gateway.core.runtime import open_spool
from gateway.spool.outbox import Outbox
from gateway.spool.store import AsyncSpool

INTERVAL = 0.03  # seconds between batches (plus the commit's own time)


async def produce(config_path: Path, run: int) -> None:
    config = load_or_report(config_path, read_secrets=False)
    if config is None:
        raise SystemExit(78)
    outbox = Outbox(AsyncSpool(open_spool(config)), "grid")
    rng = random.Random(run)
    n = 0
    first_unreported = 0
    while True:
        batch = [{"device": "pc", "run": run, "i": n + k} for k in range(rng.randint(1, 4))]
        n += len(batch)
        rejected = outbox.rejected
        await outbox.put_summaries(batch, time.time())
        if outbox.rejected != rejected:  # refused by the spool's policy: not committed
            print(f"rejected {run} {first_unreported} {n - 1}", flush=True)
            first_unreported = n
        elif outbox.pending == 0:  # the commit returned: every row handed over is in the spool
            print(f"committed {run} {first_unreported} {n - 1}", flush=True)
            first_unreported = n
        await asyncio.sleep(INTERVAL)


if __name__ == "__main__":
    asyncio.run(produce(Path(sys.argv[1]), int(sys.argv[2])))
