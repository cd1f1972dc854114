"""Capped jittered exponential backoff, checked against the closed-form schedule."""

from __future__ import annotations

import random

import pytest

from gateway.core.backoff import Backoff


def test_without_jitter_doubles_up_to_cap_and_resets() -> None:
    b = Backoff(0.5, 5.0, jitter=0.0)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert b.attempts == 6
    b.reset()
    assert b.next() == 0.5 and b.attempts == 1


def test_jitter_stays_within_band_and_is_reproducible() -> None:
    a = Backoff(1.0, 8.0, jitter=0.5, rng=random.Random(3))
    b = Backoff(1.0, 8.0, jitter=0.5, rng=random.Random(3))
    delays = [a.next() for _ in range(200)]
    assert delays == [b.next() for _ in range(200)]
    bases = [min(8.0, 2.0**i) for i in range(200)]
    assert all(base * 0.5 <= d <= base for d, base in zip(delays, bases, strict=True))
    assert len(set(delays)) > 150  # really jittered, not a constant


def test_many_failures_never_overflow() -> None:
    b = Backoff(0.1, 60.0, rng=random.Random(0))
    for _ in range(5000):
        assert 0.0 < b.next() <= 60.0


@pytest.mark.parametrize(
    ("initial", "cap", "jitter"), [(0.0, 1.0, 0.5), (2.0, 1.0, 0.5), (1.0, 2.0, 1.5)]
)
def test_bad_parameters_are_refused(initial: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, cap, jitter)
