"""Temporary stand-in for drivers.modbus.plan until the real module lands: one u16 per point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drivers.modbus.types import Table
from gateway.core.model import PointSpec, Quality


@dataclass(frozen=True)
class ReadRequest:
    table: Table
    address: int
    count: int


@dataclass(frozen=True)
class StandinPlan:
    requests: tuple[ReadRequest, ...]
    points: tuple[PointSpec, ...]
    where: tuple[tuple[int, int], ...]  # (request index, offset) per point

    def decode(self, blocks):  # type: ignore[no-untyped-def]
        n = len(self.points)
        values = np.full(n, np.nan)
        quality = np.full(n, Quality.BAD, dtype=np.uint8)
        for i, (r, off) in enumerate(self.where):
            block = blocks[r]
            if block is not None:
                values[i] = float(block[off])
                quality[i] = Quality.GOOD
        return values, quality, {}


def plan_of(spans: Sequence[tuple[Table, int, int]]) -> StandinPlan:
    requests = tuple(ReadRequest(t, a, c) for t, a, c in spans)
    points = []
    where = []
    for r, (t, a, c) in enumerate(spans):
        for off in range(c):
            points.append(PointSpec(f"{t.value}{a + off}"))
            where.append((r, off))
    return StandinPlan(requests, tuple(points), tuple(where))
