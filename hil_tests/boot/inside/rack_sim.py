"""The battery rack simulator inside the booted container (ptys do not cross nspawn's /dev/pts).

Run by the container's systemd (``systemd-run``) with the installed gridgate venv's python. Each
line's pty slave is made root:dialout 0660, as udev makes a USB serial adapter, so the bms daemon
(SupplementaryGroups=dialout) opens it the way it opens /dev/ttyUSB0 in the field. The paths go
are linked as DIR/l0, DIR/l1, ... (the first argument), the names the config uses whatever pty
numbers the kernel gave; READY=1 once they exist, then the simulator runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import signal
import sys
from pathlib import Path

import sdnotify

from gateway.sim.cells import Chemistry
from gateway.sim.rack import RackSim, RackSpec
from gateway.sim.rack_server import RackServer


async def main(out: Path, lines: int, boards: int) -> None:
    spec = RackSpec(lines=lines, boards_per_line=boards, chemistry=Chemistry.NMC, seed=5)
    dialout = grp.getgrnam("dialout").gr_gid
    async with RackServer(RackSim(spec), speed=1.0) as server:
        for path in server.paths:
            os.chown(path, 0, dialout)
            Path(path).chmod(0o660)
        out.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(server.paths):
            link = out / f"l{i}"
            link.unlink(missing_ok=True)
            link.symlink_to(path)
        (out / "paths.json").write_text(json.dumps({"paths": server.paths}))
        sdnotify.SystemdNotifier().notify("READY=1")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
