"""Household load profiles: one day of one-minute active power per house.

The shipped file ``data/ieee_eu_lv_profiles.csv`` holds 30 of the 100 daily profiles of the IEEE
European LV test feeder (see ``data/README.md``), in whole watts: one row per minute of the day
(1440 rows), one column per profile, the header naming the original profile numbers
(``minute,p1,p2,...``). Whole watts are exact: the source gives kW with three decimals.

``python -m gateway.sim.profiles_data SRC_DIR OUT.csv`` rebuilds the file from the original
``Daily_1min_100profiles`` folder.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.core.errors import GatewayError

MINUTES_PER_DAY = 1440
DEFAULT_PATH = Path(__file__).parent / "data" / "ieee_eu_lv_profiles.csv"
SHIPPED_IDS: tuple[int, ...] = tuple(range(1, 31))


class ProfileDataError(GatewayError):
    """A profile file is missing, malformed or does not hold the asked-for profile."""


@dataclass(frozen=True)
class ProfileSet:
    """Daily profiles in kW, ``kw[i, minute]`` for the profile numbered ``ids[i]``."""

    ids: tuple[int, ...]
    kw: npt.NDArray[np.float64]

    def index(self, profile_id: int) -> int:
        """Row of the profile with the original number ``profile_id``."""
        try:
            return self.ids.index(profile_id)
        except ValueError:
            have = f"{self.ids[0]}..{self.ids[-1]}" if self.ids else "none"
            raise ProfileDataError(f"load profile {profile_id} not in the set ({have})") from None


def load_profiles(path: Path = DEFAULT_PATH) -> ProfileSet:
    """Read a compact profile CSV (header ``minute,pN,...``; values in whole watts)."""
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise ProfileDataError(f"{path}: cannot read load profiles: {exc}") from exc
    if not rows or rows[0][:1] != ["minute"]:
        raise ProfileDataError(f"{path}: header must start with 'minute'")
    try:
        ids = tuple(int(h.removeprefix("p")) for h in rows[0][1:])
        body = np.array([[float(v) for v in row[1:]] for row in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise ProfileDataError(f"{path}: not a number: {exc}") from exc
    if body.shape != (MINUTES_PER_DAY, len(ids)):
        raise ProfileDataError(
            f"{path}: expected {MINUTES_PER_DAY} rows of {len(ids)} profiles, got {body.shape}"
        )
    return ProfileSet(ids, np.ascontiguousarray(body.T / 1000.0))


def read_original(src_dir: Path, profile_id: int) -> npt.NDArray[np.float64]:
    """One original ``load_profile_N.txt`` (kW, one value a line) as an array."""
    path = src_dir / f"load_profile_{profile_id}.txt"
    try:
        values = np.array([float(x) for x in path.read_text().split()], dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise ProfileDataError(f"{path}: {exc}") from exc
    if values.shape != (MINUTES_PER_DAY,):
        raise ProfileDataError(f"{path}: expected {MINUTES_PER_DAY} values, got {values.size}")
    return values


def write_compact(src_dir: Path, out: Path, ids: Sequence[int] = SHIPPED_IDS) -> None:
    """Convert original profiles to the compact CSV (kW with 3 decimals -> whole watts)."""
    watts = [np.rint(read_original(src_dir, i) * 1000.0).astype(np.int64) for i in ids]
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["minute", *(f"p{i}" for i in ids)])
        for minute in range(MINUTES_PER_DAY):
            writer.writerow([minute, *(int(w[minute]) for w in watts)])


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src_dir", type=Path, help="the Daily_1min_100profiles folder")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    write_compact(args.src_dir, args.out)


if __name__ == "__main__":
    _main()
