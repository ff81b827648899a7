"""The API's per-application rate limit as a token bucket with an injectable clock.

The real limit is "about N requests per second"; a bucket holding N tokens and refilling
N per second is the most permissive reading of that, so a client that the simulator
accepts at full speed may still want a margin against the real API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["TokenBucket"]

#: Float slack so that a client pacing at exactly ``rate`` is never refused by rounding.
_EPSILON = 1e-6


class TokenBucket:
    """``rate`` requests per second with bursts of up to ``rate`` requests; thread-safe."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token if there is one; False means the request must be refused."""
        with self._lock:
            now = self._clock()
            elapsed = max(now - self._stamp, 0.0)
            self._stamp = now
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            if self._tokens + _EPSILON >= 1.0:
                self._tokens -= 1.0
                return True
            return False
