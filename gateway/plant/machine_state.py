"""The operating state the PLC reports as a number on its state tag.

Counters, efficiency and summaries all read it; one table keeps them agreeing on what running and
tripped are.
"""

from __future__ import annotations

import math

STATE_NAMES = {0: "off", 1: "starting", 2: "running", 3: "stopping", 4: "tripped"}
RUNNING = 2.0
TRIPPED = 4.0


def state_name(state: float) -> str:
    """The state's name; "unknown" for a code the table lacks or no reading (NaN)."""
    if not math.isfinite(state):
        return "unknown"
    return STATE_NAMES.get(int(state), "unknown")
