"""Capped, jittered exponential backoff for reconnects and failed polls.

Jitter spreads the retries of many gateways that lost the same broker or meter at the same
moment, so they do not all come back in lock-step ("thundering herd").
"""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial, 2*initial, 4*initial, ...`` up to ``cap``, each shortened by jitter.

    With ``jitter = j`` a delay is drawn uniformly from ``[base * (1 - j), base]``, so the cap is
    never exceeded and a delay never drops below ``initial * (1 - j)``.
    """

    def __init__(
        self,
        initial: float,
        cap: float,
        jitter: float = 0.5,
        rng: random.Random | None = None,
        factor: float = 2.0,
    ) -> None:
        if initial <= 0:
            raise ValueError(f"initial delay must be > 0, got {initial}")
        if cap < initial:
            raise ValueError(f"cap ({cap}) must be >= initial delay ({initial})")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be within [0, 1], got {jitter}")
        if factor < 1.0:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self._initial = initial
        self._cap = cap
        self._jitter = jitter
        self._factor = factor
        self._rng = rng if rng is not None else random.Random()
        self._base = initial
        self.attempts = 0

    def next(self) -> float:
        """Return the delay before the next attempt and advance the schedule."""
        base = self._base
        # Grow only while below the cap so the base never overflows after many failures.
        self._base = min(self._cap, self._base * self._factor)
        self.attempts += 1
        return base * (1.0 - self._jitter * self._rng.random())

    def reset(self) -> None:
        """Start again from ``initial`` (call after a success)."""
        self._base = self._initial
        self.attempts = 0
