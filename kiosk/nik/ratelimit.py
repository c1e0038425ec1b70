"""A token bucket with an injected clock, for NIK attempts at one gate.

Why at all: a gate with a list answers "is this NIK listed?". Someone at the
keypad with a leaked NIK database could use that as an oracle, one NIK at a
time. The bucket caps that at ``rate_per_minute`` after a short ``burst``, so
the oracle yields a few thousand answers a day at most, while a traveller who
mistypes twice is never slowed down.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``refill_per_s`` tokens per second.

    Times are monotonic seconds passed in by the caller; a clock going backwards
    refills nothing (never a burst of free tokens).
    """

    capacity: float
    refill_per_s: float
    _tokens: float = field(init=False)
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.refill_per_s < 0:
            raise ValueError("capacity must be >= 1 and refill_per_s >= 0")
        self._tokens = float(self.capacity)

    def take(self, now: float) -> bool:
        """Spend one token at ``now``; False (and nothing spent) if none is left."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def available(self, now: float) -> float:
        """Tokens available at ``now`` (fractional)."""
        self._refill(now)
        return self._tokens

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.refill_per_s)
        if self._last is None or now > self._last:
            self._last = now
