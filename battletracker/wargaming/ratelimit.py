"""Pacing of API requests: one token bucket per application id, shared by a fetch task.

The API counts requests per key per second. The server's bucket (and the simulator's)
tolerates a burst of about one second, so pacing requests evenly at the key's rate, with
no burst of our own, keeps a key at its budget without ``REQUEST_LIMIT_EXCEEDED``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["NoLimit", "RateLimiter", "TokenBucket"]


class RateLimiter(Protocol):
    """What the fetcher needs of a limiter."""

    rate: float

    async def acquire(self) -> None:
        """Wait until one more request may be sent."""

    def slow_down(self) -> None:
        """The API said we went too fast: lower the rate."""

    def succeeded(self) -> None:
        """A request went through: the rate may creep back up."""


class TokenBucket:
    """Even pacing at ``rate`` requests/s (a GCRA with a burst of one).

    After a limit error the rate drops by ``backoff`` (not below ``min_share`` of the
    configured rate), and every ``recover_after`` successes it climbs 5 % back toward it:
    another node sharing the key may have been the cause, so recovery is slow. The rate
    drops at most once per ``calm`` seconds: the requests already in flight when the key
    went over are refused too, and one overload must not count once per such request
    (with 9 in flight it would take a 20 rps key down to its floor at once).
    """

    def __init__(
        self,
        rate: float,
        *,
        backoff: float = 0.8,
        min_share: float = 0.2,
        recover_after: int = 200,
        calm: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.configured = rate
        self.rate = rate
        self._backoff = backoff
        self._floor = rate * min_share
        self._recover_after = recover_after
        self._calm = calm
        self._calm_until = float("-inf")
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._streak = 0
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.slowdowns = 0

    def _lock_for_loop(self) -> asyncio.Lock:
        # A bucket outlives one task's event loop (its rate is worth keeping), a lock not.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock

    async def acquire(self) -> None:
        async with self._lock_for_loop():
            now = self._clock()
            start = max(now, self._next)
            self._next = start + 1.0 / self.rate
            wait = start - now
            if wait > 0:
                await self._sleep(wait)  # type: ignore[misc]

    def slow_down(self) -> None:
        self.slowdowns += 1
        self._streak = 0
        now = self._clock()
        if now < self._calm_until:
            return  # the same overload, answered to a request sent before the last drop
        self._calm_until = now + self._calm
        self.rate = max(self._floor, self.rate * self._backoff)
        # leave a gap: the requests already in flight count against this second too
        self._next = max(self._next, now) + 1.0 / self.rate

    def succeeded(self) -> None:
        if self.rate >= self.configured:
            return
        self._streak += 1
        if self._streak >= self._recover_after:
            self._streak = 0
            self.rate = min(self.configured, self.rate * 1.05)


class NoLimit:
    """A limiter that never waits (unit tests, the in-process simulator)."""

    rate = float("inf")

    async def acquire(self) -> None:
        return None

    def slow_down(self) -> None:
        return None

    def succeeded(self) -> None:
        return None
