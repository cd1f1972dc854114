from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.bench import Bench


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    try:
        b.start()
        yield b
    finally:
        b.stop()


def needs_simulator(b: Bench) -> None:
    if not b.simulated:
        pytest.skip(
            f"{b.path.name} is a hardware bench: this test injects faults into simulated devices"
        )
