"""The API's per-application rate limit, in two readings, with an injectable clock.

The real limit is "about N requests per second"; how the API counts is not documented.
:class:`TokenBucket` is the permissive reading (a bucket of N tokens refilled N per
second, so a burst after a quiet moment passes). :class:`SlidingWindow` is the strict
one: every request that reaches the limit -- refused ones too -- counts for exactly one
second after it arrived, and a request finding N already counted is refused. A client
the strict window accepts at full speed is safe under any reading in between.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["KeyLimit", "SlidingWindow", "TokenBucket"]

#: Float slack so that a client pacing at exactly ``rate`` is never refused by rounding.
_EPSILON = 1e-6


class KeyLimit(Protocol):
    """One key's limit as the simulator's handler uses it."""

    rate: float

    def take(self, at: float | None = None) -> bool:
        """Count one request (arrived at ``at``, default now); False: refuse it."""

    @property
    def peak(self) -> int:
        """The most requests seen in any one-second window so far."""


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
        self._window = _PeakCounter()

    @property
    def peak(self) -> int:
        return self._window.peak

    def take(self, at: float | None = None) -> bool:
        """Spend one token if there is one; False means the request must be refused."""
        with self._lock:
            now = self._clock() if at is None else at
            self._window.add(now)
            elapsed = max(now - self._stamp, 0.0)
            self._stamp = now
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            if self._tokens + _EPSILON >= 1.0:
                self._tokens -= 1.0
                return True
            return False


class SlidingWindow:
    """At most ``floor(rate)`` requests in any ``window`` seconds, counting refusals too.

    Counting refused requests is the strict choice: a client that overshoots keeps being
    refused until it has been quiet for a while, as a gateway that counts every arrival
    would do. A request counts from when it arrived (``at``: the HTTP server stamps the
    moment its request line was read, before any Python parsing), so the stand-in's own
    thread scheduling does not make a well-paced client look bunched. Thread-safe.
    """

    def __init__(self, rate: float, clock: Callable[[], float], window: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.limit = max(1, int(rate * window + _EPSILON))
        self.window = window
        self._clock = clock
        self._arrivals: list[float] = []  # sorted; requests may be handled out of order
        self._lock = threading.Lock()
        self._peak = 0
        # the first and last accepted arrivals, for :attr:`slot_cycle` (bounded memory;
        # twice the limit, since requests may be handled a little out of order)
        self._head: list[float] = []
        self._tail: deque[float] = deque(maxlen=2 * self.limit)
        self._accepted = 0

    @property
    def peak(self) -> int:
        return self._peak

    @property
    def slot_cycle(self) -> float | None:
        """Mean seconds between the accepted requests ``i`` and ``i + limit`` (1.0: the key
        fully used), None before there are two windows' worth.

        ``limit / slot_cycle`` is the accepted rate whatever the arrangement of requests
        within a window, unlike accepted / (last - first), which bursts at both ends of a
        run flatter by up to a window's worth.
        """
        with self._lock:
            n = self.limit
            if self._accepted < 2 * n:
                return None
            head, tail = sorted(self._head)[:n], sorted(self._tail)[-n:]
            return (sum(tail) - sum(head)) / (self._accepted - n)

    def take(self, at: float | None = None) -> bool:
        with self._lock:
            now = self._clock()
            t = now if at is None else min(at, now)
            arrivals = self._arrivals
            # forget what no window can reach any more (keep a second of slack for stragglers)
            cut = bisect.bisect_right(arrivals, now - 2 * self.window)
            if cut:
                del arrivals[:cut]
            before = bisect.bisect_right(arrivals, t) - bisect.bisect_right(
                arrivals, t - self.window)
            allowed = before < self.limit
            bisect.insort(arrivals, t)
            after = bisect.bisect_left(arrivals, t + self.window) - bisect.bisect_left(
                arrivals, t)
            self._peak = max(self._peak, before + 1, after)
            if allowed:
                self._accepted += 1
                if len(self._head) < 2 * self.limit:
                    self._head.append(t)
                self._tail.append(t)
            return allowed


class _PeakCounter:
    """The most arrivals within one second, for a bucket's stats (not thread-safe)."""

    def __init__(self) -> None:
        self._arrivals: deque[float] = deque()
        self.peak = 0

    def add(self, now: float) -> None:
        while self._arrivals and self._arrivals[0] <= now - 1.0:
            self._arrivals.popleft()
        self._arrivals.append(now)
        self.peak = max(self.peak, len(self._arrivals))
