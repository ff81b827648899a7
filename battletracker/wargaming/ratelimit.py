"""Pacing of API requests: one limiter per application id, shared by a node's fetch tasks.

The API counts requests per key per second, and does not say how. The strict reading --
at most N requests in any sliding one-second window -- is the one to be safe under, so
:class:`TokenBucket` paces evenly at the key's rate *and* never grants more than N
requests within one second plus a ``margin``. The margin absorbs the jitter between the
moment a request is granted here and the moment it reaches the API (scheduling, the
network): with 20 ms a 20 rps key runs at 20/1.02 = 98 % of its budget.

One limiter serves every fetch task of the process, each in its own thread and event
loop (several chunks in progress keep requests flowing across chunk boundaries), so its
state sits behind a thread lock and no lock is held while a task sleeps.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["DEFAULT_MARGIN", "NoLimit", "RateLimiter", "TokenBucket"]

#: Seconds added to the one-second window; see the module docstring for what it costs.
DEFAULT_MARGIN = 0.02
#: How far behind its schedule even pacing may catch up (a task woke late under load):
#: the lost slots are granted back to back, the window rule still bounds every second.
_CATCH_UP = 0.25


class RateLimiter(Protocol):
    """What the fetcher needs of a limiter."""

    rate: float

    async def acquire(self) -> float | None:
        """Wait until one more request may be sent; returns the grant's stamp, if any."""

    def sent(self, stamp: float) -> None:
        """The request granted at ``stamp`` went on the wire only now: count it from now."""

    def slow_down(self) -> None:
        """The API said we went too fast: lower the rate."""

    def succeeded(self) -> None:
        """A request went through: the rate may creep back up."""


class TokenBucket:
    """Even pacing at ``rate`` requests/s, and at most ``floor(rate)`` per 1 s + ``margin``.

    After a limit error the rate drops by ``backoff`` (not below ``min_share`` of the
    configured rate), and every ``recover_after`` successes it climbs 5 % back toward it.
    Under leases every node spends only its share, so a lone limit error is most likely
    jitter that beat the margin: the drop is small and recovery takes seconds (at 20 rps
    one error costs under half a second of the key's budget); repeated errors (another
    node overspending) still drive the rate down to its floor. The rate
    drops at most once per ``calm`` seconds: the requests already in flight when the key
    went over are refused too, and one overload must not count once per such request
    (with 9 in flight it would take a 20 rps key down to its floor at once).
    """

    def __init__(
        self,
        rate: float,
        *,
        margin: float = DEFAULT_MARGIN,
        backoff: float = 0.9,
        min_share: float = 0.2,
        recover_after: int = 50,
        calm: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.configured = rate
        self.margin = margin
        self._backoff = backoff
        self._floor = rate * min_share
        self._recover_after = recover_after
        self._calm = calm
        self._calm_until = float("-inf")
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._streak = 0
        self._state = threading.Lock()
        self._loop_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._granted: deque[float] = deque()
        self.slowdowns = 0
        self._set_rate(rate)

    def _set_rate(self, rate: float) -> None:
        self.rate = rate
        #: at most ``per_window`` grants within ``window`` seconds (1 s, or longer below 1 rps)
        self.per_window = max(1, math.floor(rate + 1e-9))
        self.window = max(1.0, self.per_window / rate) + self.margin
        while len(self._granted) > self.per_window:
            self._granted.popleft()

    def _loop_lock(self) -> asyncio.Lock:
        # One waiter per event loop polls the shared state; the others queue behind it.
        loop = asyncio.get_running_loop()
        with self._state:
            lock = self._loop_locks.get(loop)
            if lock is None:
                self._loop_locks = {
                    lp: lk for lp, lk in self._loop_locks.items() if not lp.is_closed()
                }
                lock = self._loop_locks[loop] = asyncio.Lock()
            return lock

    def _try_grant(self) -> tuple[float, float]:
        """(0, stamp): granted now; (wait, 0): ask again after ``wait`` seconds."""
        with self._state:
            now = self._clock()
            # behind schedule by a little: catch up; by more (idle): start afresh
            base = self._next if self._next >= now - _CATCH_UP else now
            earliest = base
            if len(self._granted) >= self.per_window:
                earliest = max(earliest, self._granted[0] + self.window)
            if earliest > now:
                return earliest - now, 0.0
            self._next = base + 1.0 / self.rate
            self._granted.append(now)
            if len(self._granted) > self.per_window:
                self._granted.popleft()
            return 0.0, now

    async def acquire(self) -> float:
        async with self._loop_lock():
            while True:
                wait, stamp = self._try_grant()
                if wait <= 0:
                    return stamp
                await self._sleep(wait)  # type: ignore[misc]

    def sent(self, stamp: float) -> None:
        """Move the grant ``stamp`` to now: a new connection or a busy loop held it back.

        The window rule then counts the request from when the API sees it, so a request
        delayed by connection set-up cannot share a second with ``per_window`` others.
        """
        with self._state:
            now = self._clock()
            if now <= stamp:
                return
            granted = self._granted
            for i in range(len(granted) - 1, -1, -1):
                if granted[i] == stamp:
                    del granted[i]
                    # keep the deque ordered: the oldest grant decides the next wait
                    j = len(granted)
                    while j > 0 and granted[j - 1] > now:
                        j -= 1
                    granted.insert(j, now)
                    return

    def slow_down(self) -> None:
        with self._state:
            self.slowdowns += 1
            self._streak = 0
            now = self._clock()
            if now < self._calm_until:
                return  # the same overload, answered to a request sent before the last drop
            self._calm_until = now + self._calm
            self._set_rate(max(self._floor, self.rate * self._backoff))
            # leave a gap: the requests already in flight count against this second too
            self._next = max(self._next, now) + 1.0 / self.rate

    def succeeded(self) -> None:
        with self._state:
            if self.rate >= self.configured:
                return
            self._streak += 1
            if self._streak >= self._recover_after:
                self._streak = 0
                self._set_rate(min(self.configured, self.rate * 1.05))


class NoLimit:
    """A limiter that never waits (unit tests, the in-process simulator)."""

    rate = float("inf")

    async def acquire(self) -> None:
        return None

    def sent(self, stamp: float) -> None:
        return None

    def slow_down(self) -> None:
        return None

    def succeeded(self) -> None:
        return None
