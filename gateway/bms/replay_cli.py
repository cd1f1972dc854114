"""``gridgate replay bms RECORDING.csv -c CONFIG [-o OUT.csv] [--soc0 X]``: argument wiring only.

Kept apart from :mod:`gateway.bms.replay` so that building the parser loads no numpy.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EX_CONFIG = 78


def add_parser(sub: Any) -> None:
    r = sub.add_parser("replay", help="run an estimator on a recording (docs/replay.md)")
    which = r.add_subparsers(dest="replay_what", required=True, metavar="WHAT")
    b = which.add_parser("bms", help="the BMS cell estimator on a rack recording (CSV)")
    b.add_argument("recording", type=Path, help="CSV: t, current_a, v_0001..., [temp_0001...]")
    b.add_argument("-o", "--output", type=Path, default=None, help="per-step statistics CSV")
    b.add_argument(
        "--soc0",
        type=float,
        default=None,
        help="start every cell at this SOC (0..1) instead of reading it off the OCV curve",
    )


def run(args: argparse.Namespace) -> int:
    # start-up: the parser is built by every gridgate command, the config and the estimator
    # (numpy, the C kernels) are loaded by this one only.
    from gateway.bms.config import BmsConfig
    from gateway.config import load_or_report

    config = load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    bms = config.section("bms", BmsConfig)
    if bms is None:
        print(f"{args.config}: no [bms] section: nothing to replay with", flush=True)
        return EX_CONFIG
    if args.soc0 is not None and not 0.0 <= args.soc0 <= 1.0:
        print(f"--soc0 must be 0..1, got {args.soc0}")
        return 64  # EX_USAGE
    # start-up: the replay estimator loads numpy and the C kernels.
    from gateway.bms.replay import run_replay

    return run_replay(args.recording, bms, args.output, args.soc0)
