"""``gridgate loadflow``: solve a feeder (or a time series of it) and write power-grid-model output.

    gridgate loadflow FEEDER.json [--update UPDATE.json] [--symmetric] [-o OUT.json]

The feeder is a power-grid-model JSON input file; the update file a power-grid-model (batch)
update dataset of load powers. Without ``-o`` the output goes to stdout. Exit 0 when every step
converged, 1 when some did not (their rows are written with energized 0 and null values),
78 on an invalid input (every problem listed on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.config.issues import IssueSink
from gateway.core.errors import ConfigError
from gateway.native import pgm_json

EX_CONFIG = 78


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "loadflow", help="unbalanced load flow of a radial feeder (power-grid-model JSON in/out)"
    )
    p.add_argument("feeder", type=Path, help="power-grid-model JSON input file")
    p.add_argument("--update", type=Path, default=None, help="(batch) update dataset of loads")
    p.add_argument("--symmetric", action="store_true", help="balanced positive-sequence solve")
    p.add_argument("-o", "--output", type=Path, default=None, help="output file (default stdout)")
    return p


def run(args: argparse.Namespace) -> int:
    # start-up: numpy loads only for this command; every gridgate command builds this parser.
    from gateway.grid.pgm_output import apply_updates, results_to_pgm

    # start-up: the C kernels load only for this command too: `gridgate status` stays fast.
    from gateway.native.loadflow import Feeder

    try:
        feeder = Feeder.from_pgm_json(args.feeder)
        loads = None
        if args.update is not None:
            sink = IssueSink(str(args.update))
            ds = pgm_json.load(args.update, sink)
            loads = apply_updates(feeder.model, ds.scenarios, sink)
            sink.raise_if_any()
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EX_CONFIG
    if loads is None:
        res = feeder.solve(symmetric=args.symmetric, warm=False)
        batch = False
    else:
        res = feeder.solve_batch(loads, symmetric=args.symmetric)
        batch = True
    kind = "sym_output" if args.symmetric else "asym_output"
    doc = pgm_json.dump(kind, results_to_pgm(res), batch)
    text = json.dumps(doc)
    if args.output is None:
        sys.stdout.write(text + "\n")
    else:
        args.output.write_text(text + "\n")
    failed = int((~res.converged).sum())
    if failed:
        sys.stderr.write(f"{args.feeder}: {failed} load flow(s) did not converge\n")
        return 1
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gridgate")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(run(_parse(None)))
