"""``gridgate demo``: the whole gateway on a simulated bench, nothing to configure.

A private mosquitto, the simulators (the feeder's meters on Modbus TCP, a battery rack on
pseudo-terminals, a gas turbine's PLC on OPC UA) and ``gridgate run all`` are started as separate
processes, exactly as on a gateway; this process subscribes like an upstream consumer and prints
one line per message until Ctrl-C or ``--duration``, then a summary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from gateway.demo.config import DAEMONS, demo_config
from gateway.demo.lines import LEGEND, line
from gateway.demo.sims import (
    PLANT_SPEED,
    RACK_BOARDS,
    RACK_FAULT_AFTER_S,
    RACK_LINES,
    Sim,
    SimError,
    log_tail,
    start_feeder,
    start_plant,
    start_rack,
    stop_process,
)
from gateway.sim.broker import BrokerError, Mosquitto
from gateway.sim.lv_feeder import LvFeederModel
from gateway.sim.upstream import Received, Upstream

EX_UNAVAILABLE = 69
# A midsummer morning on the feeder: load rising and PV coming up, so voltages move both ways.
FEEDER_START = 1718928000.0 + 10 * 3600  # 2024-06-21 10:00 UTC
FEEDER_SEED = 3


def _start_sims(
    base: Path, only: Sequence[str], speed: float
) -> tuple[dict[str, Sim], dict[str, object]]:
    sims: dict[str, Sim] = {}
    try:
        if "grid" in only:
            sims["grid"] = start_feeder(base, speed, FEEDER_START, FEEDER_SEED)
        if "bms" in only:
            sims["bms"] = start_rack(base)
        if "plant" in only:
            sims["plant"] = start_plant(base)
    except SimError:
        for s in sims.values():
            s.stop()
        raise
    parts: dict[str, object] = {"feeder": None, "rack_ports": None, "plant_endpoint": None}
    if "grid" in sims:
        info = sims["grid"].info
        model = LvFeederModel(FEEDER_SEED, FEEDER_START)
        parts["feeder"] = (model, info["port"], info["meters"])
    if "bms" in sims:
        parts["rack_ports"] = sims["bms"].info["paths"]
    if "plant" in sims:
        parts["plant_endpoint"] = sims["plant"].info["endpoint"]
    return sims, parts


def _banner(base: Path, keep: bool, sims: dict[str, Sim], broker: Mosquitto, speed: float) -> str:
    cfg = base / "gridgate.toml"
    out = [f"gridgate demo: {', '.join(sims)} -> spool -> uplink -> broker, on a simulated bench"]
    if "grid" in sims:
        out.append(
            f"  grid   the IEEE European LV feeder, {len(sims['grid'].info['meters'])} meters "  # type: ignore[arg-type]
            f"on Modbus TCP 127.0.0.1:{sims['grid'].info['port']}, {speed:g}x simulated time "
            "from a midsummer 10:00"
        )
    if "bms" in sims:
        out.append(
            f"  bms    a rack of {RACK_LINES} lines x {RACK_BOARDS} boards x 14 NMC cells "
            f"on pseudo-terminals, real time; a cell's sense wire comes loose after "
            f"{RACK_FAULT_AFTER_S} s"
        )
    if "plant" in sims:
        out.append(
            f"  plant  a gas turbine's PLC at {sims['plant'].info['endpoint']}, {PLANT_SPEED:g}x; "
            "a bearing starts to wear after 20 s"
        )
    out.append(f"  broker mosquitto on {broker.host}:{broker.port} (private to the demo)")
    fate = "kept" if keep else "deleted when the demo ends"
    out += [
        f"  files  {base} ({fate}); while it runs, try from a second terminal:",
        f"           gridgate status -c {cfg}",
        f"           gridgate points --watch -c {cfg}",
        f"           gridgate check-config -c {cfg}",
    ]
    return "\n".join(out)


def _summary(upstream: Upstream) -> str:
    docs = upstream.docs()
    seqs = [d["seq"] for d in docs]
    dups = len(seqs) - len(set(seqs))
    per = Counter(str(d.get("daemon")) for d in docs)
    alarms = Counter(str(d.get("daemon")) for d in docs if d.get("kind") == "alarm")
    estimates = sum(1 for d in docs if d.get("kind") == "estimate")
    by = ", ".join(f"{d} {per[d]}" for d in (*DAEMONS, "uplink") if per[d])
    alarm_by = ", ".join(f"{d} {n}" for d, n in sorted(alarms.items())) or "none"
    return (
        f"gridgate demo: {len(docs)} messages upstream ({by or 'none'}; {estimates} feeder "
        f"estimates), alarms: {alarm_by}; {dups} duplicate(s)"
    )


def _start_daemons(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``gridgate run all``, as a gateway without systemd would run it."""
    with log_path.open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-P", "-m", "gateway.cli", "run", "all", "-c", str(config)],
            stdout=log,
            stderr=log,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            # Ctrl-C reaches the demo only: it stops the daemons (they flush, the uplink
            # drains), then the simulators and the broker.
            start_new_session=True,
        )


def _wait(
    daemons: subprocess.Popen[bytes], stop: threading.Event, duration: float | None, log: Path
) -> bool:
    """Until Ctrl-C or the duration; False when the daemons exited by themselves."""
    deadline = time.monotonic() + duration if duration is not None else None
    while not stop.is_set():
        if daemons.poll() is not None:
            print(
                f"gridgate demo: the daemons exited ({daemons.returncode}):\n{log_tail(log, 15)}",
                file=sys.stderr,
            )
            return False
        if deadline is not None and time.monotonic() >= deadline:
            break
        stop.wait(0.2)
    return True


def run_demo(
    duration: float | None, speed: float, keep: Path | None, only: Sequence[str] = DAEMONS
) -> int:
    base = keep or Path(tempfile.mkdtemp(prefix="gridgate-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        broker = Mosquitto(base / "broker")
    except BrokerError as exc:
        print(f"gridgate demo: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    sims: dict[str, Sim] = {}
    daemons: subprocess.Popen[bytes] | None = None
    upstream: Upstream | None = None
    printed = threading.Lock()

    def show(msg: Received) -> None:
        with printed:
            print(line(msg), flush=True)

    stop = threading.Event()
    old_int = signal.signal(signal.SIGINT, lambda *_: stop.set())
    old_term = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        broker.start()
        sims, parts = _start_sims(base, only, speed)
        config = base / "gridgate.toml"
        config.write_text(
            demo_config(
                base / "state",
                (broker.host, broker.port),
                plant_speed=PLANT_SPEED,
                **parts,  # type: ignore[arg-type]
            )
        )
        upstream = Upstream(broker.host, broker.port, on_message=show)
        upstream.start()
        daemons = _start_daemons(config, base / "gridgate.log")
        with printed:
            print(_banner(base, keep is not None, sims, broker, speed), flush=True)
            when = (
                f"for {duration:g} s (Ctrl-C stops it earlier)"
                if duration is not None
                else "until Ctrl-C"
            )
            print(f"Runs {when}.\n\n{LEGEND}", flush=True)
        if not _wait(daemons, stop, duration, base / "gridgate.log"):
            return 1
        # The daemons flush their last windows and the uplink drains them before it says
        # offline: wait for that before counting.
        stop_process(daemons, timeout=30)
        time.sleep(0.5)
        print(_summary(upstream), flush=True)
        return 0
    except (BrokerError, SimError, TimeoutError) as exc:
        print(f"gridgate demo: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        stop_process(daemons)
        for s in sims.values():
            s.stop()
        if upstream is not None:
            with contextlib.suppress(Exception):
                upstream.stop()
        broker.stop()
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
