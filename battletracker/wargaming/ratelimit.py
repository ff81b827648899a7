"""Pacing of API requests: one pacer per application id, shared by a node's fetch tasks.

The API counts requests per key per second, and does not say how. The strict reading --
at most N requests in any sliding one-second window -- is the one to be safe under, and
a client that keeps to it is safe under every looser reading too (a token bucket, whole
seconds). :class:`KeyPacer` is that rule and nothing else: it remembers when the last N
requests went on the wire, and the next one may go at ``oldest + 1 s + margin``.

Two grants are at least half a rate's period apart (``spread``): after a stall (a busy
host, a slow chunk boundary) the slots that came due go at twice the rate, which catches
up within the stall's own length instead of losing them, but a window's worth never
goes at once. Once it has, every slot comes due a window after its last use, so the
burst repeats every second for the rest of the night: a window's worth of requests
leaving together, each on its own connection (20 at 20 rps, against 11-12 spaced), and
waking together, which cost a little of the budget (``docs/performance.md``).
A request is counted here once all of it is written (so no part of it reaches
the API later than counted), which leaves the margin only the network's jitter between
two requests a second apart: with 10 ms a 20 rps key runs at 20/1.01 = 99 % of its
budget at best.

One pacer serves every fetch task of the process (several chunks in progress keep
requests flowing across chunk boundaries), so its state sits behind a thread lock and no
lock is held while a task sleeps. Waiters are served by ``priority`` (the fetcher passes
its chunk's start): the oldest chunk takes the budget until its last batch is out, so
chunks finish one after another and the next one's requests are already waiting while
the last answers of the one before are in flight -- chunks started together would
otherwise share the budget, finish together, and leave the key idle across the gap
before the next ones start.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["DEFAULT_MARGIN", "KeyPacer", "NoLimit", "RateLimiter", "TokenBucket"]

#: Seconds added to the one-second window; see the module docstring for what it costs.
DEFAULT_MARGIN = 0.01
#: The least time between two grants, in periods of the rate (see :class:`KeyPacer`).
DEFAULT_SPREAD = 0.5
#: How often a waiter looks again when every slot is held by a request not yet on the
#: wire (a connection being set up): such a slot frees only once it has been sent.
_UNSENT_POLL = 0.005
#: A wait shorter than this is none (a clock may not move for it).
_RESOLUTION = 1e-6


class RateLimiter(Protocol):
    """What the fetcher needs of a limiter."""

    rate: float

    async def acquire(self, priority: float = 0.0) -> float | None:
        """Wait until one more request may be sent (lowest ``priority`` first); returns the
        grant's stamp, if any."""

    async def wire(self, stamp: float) -> None:
        """Wait until the request granted at ``stamp`` may be written (the grant may come
        up to ``lead`` seconds early); call it just before the headers are written."""

    def sent(self, stamp: float) -> None:
        """The request granted at ``stamp`` is on the wire (or failed) now: count it from now.

        Every grant is followed by exactly one call; until then the grant holds its slot.
        """

    def slow_down(self) -> None:
        """The API said we went too fast: lower the rate."""

    def succeeded(self) -> None:
        """A request went through: the rate may creep back up."""


class KeyPacer:
    """At most ``floor(rate)`` sends in any ``1 s + margin``, each as early as that allows
    and at least ``spread / rate`` after the grant before it (0: no spacing at all).

    The log holds one entry per request of the current window: the grant's stamp until
    :meth:`sent` moves it to when the request reached the wire (later, so the safe side).
    A slot frees once its request has been *sent* and a window has passed since; a grant
    whose request never left (an error before the headers went) is counted from when the
    caller says so, never dropped.

    After a limit error the rate drops by ``backoff`` (not below ``min_share`` of the
    configured rate), and every ``recover_after`` successes it climbs 5 % back toward it.
    Under leases every node spends only its share, so a lone limit error is most likely
    jitter that beat the margin: the drop is small and recovery takes seconds; repeated
    errors (another node overspending) still drive the rate down to its floor. The rate
    drops at most once per ``calm`` seconds: the requests already in flight when the key
    went over are refused too, and one overload must not count once per such request.
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
        lead: float = 0.0,
        spread: float = DEFAULT_SPREAD,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not 0 <= spread <= 1:
            raise ValueError(f"spread must be within 0..1, got {spread}")
        self.margin = margin
        #: how early a grant may come; its request then waits at the wire (:meth:`wire`)
        self.lead = max(0.0, lead)
        self._spread = spread
        self._last_grant = float("-inf")
        self._backoff = backoff
        self._min_share = min_share
        self._recover_after = recover_after
        self._calm = calm
        self._calm_until = float("-inf")
        self._hold_until = float("-inf")
        self._clock = clock
        self._sleep = sleep
        self._streak = 0
        self._state = threading.Lock()
        self._gates: dict[asyncio.AbstractEventLoop, _Gate] = {}
        #: the requests of the window, ascending by stamp
        self._log: list[_Entry] = []
        self.slowdowns = 0
        self.configured = rate
        self._set_rate(rate)

    def _set_rate(self, rate: float) -> None:
        self.rate = rate
        #: at most ``per_window`` sends within ``window`` seconds (1 s, or longer below 1 rps)
        self.per_window = max(1, math.floor(rate + 1e-9))
        self.window = max(1.0, self.per_window / rate) + self.margin
        #: the least time between two grants
        self.spacing = self._spread / rate

    def reconfigure(self, rate: float) -> None:
        """A new configured rate (a lease's new share), keeping the window's history.

        Replacing the pacer instead would forget the requests of the last second and let
        a full window go at once on top of them; chunks already running share this one.
        """
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        with self._state:
            if rate == self.configured:
                return
            self.configured = rate
            self._streak = 0
            self._set_rate(rate)

    def _gate(self) -> _Gate:
        # One waiter per event loop polls the shared state; the others queue behind it.
        loop = asyncio.get_running_loop()
        with self._state:
            gate = self._gates.get(loop)
            if gate is None:
                self._gates = {lp: g for lp, g in self._gates.items() if not lp.is_closed()}
                gate = self._gates[loop] = _Gate()
            return gate

    def _try_grant(self) -> tuple[float, float]:
        """(0, stamp): granted now; (wait, 0): ask again after ``wait`` seconds."""
        with self._state:
            now = self._clock()
            gone = now - self.window
            log = self._log
            # sent requests older than a window no longer count; unsent ones always do
            if log and log[0].stamp <= gone:
                log[:] = [e for e in log if not e.sent or e.stamp > gone]
            if now < self._hold_until:
                return self._hold_until - now, 0.0
            excess = len(log) - self.per_window
            at = max(now, self._last_grant + self.spacing)
            if excess >= 0:
                # (excess + 1) sent requests must leave the window; unsent ones cannot
                sent = [e.stamp for e in log if e.sent]
                if len(sent) <= excess:
                    return _UNSENT_POLL, 0.0
                at = max(at, sent[excess] + self.window)
            if at - now > self.lead + _RESOLUTION:
                return at - now - self.lead, 0.0
            # granted for ``at`` (now, or up to ``lead`` ahead): the request goes no earlier
            self._last_grant = at
            entry = _Entry(at)
            j = len(log)
            while j > 0 and log[j - 1].stamp > at:
                j -= 1
            log.insert(j, entry)
            return 0.0, at

    async def acquire(self, priority: float = 0.0) -> float:
        gate = self._gate()
        await gate.enter(priority)
        try:
            while True:
                wait, stamp = self._try_grant()
                if wait <= 0:
                    return stamp
                await self._sleep(wait)  # type: ignore[misc]
        finally:
            gate.leave()

    async def wire(self, stamp: float) -> None:
        wait = stamp - self._clock()
        if wait > 0:
            await self._sleep(wait)  # type: ignore[misc]

    def sent(self, stamp: float) -> None:
        """The request granted at ``stamp`` reached the wire now: it counts from now.

        A request held back by connection set-up or a busy loop then cannot share a
        window with ``per_window`` others; unknown or repeated stamps change nothing.
        """
        with self._state:
            now = self._clock()
            log = self._log
            for i in range(len(log) - 1, -1, -1):
                entry = log[i]
                if entry.stamp == stamp and not entry.sent:
                    del log[i]
                    entry.stamp, entry.sent = max(now, stamp), True
                    j = len(log)
                    while j > 0 and log[j - 1].stamp > entry.stamp:
                        j -= 1
                    log.insert(j, entry)
                    return

    def slow_down(self) -> None:
        with self._state:
            self.slowdowns += 1
            self._streak = 0
            now = self._clock()
            if now < self._calm_until:
                return  # the same overload, answered to a request sent before the last drop
            self._calm_until = now + self._calm
            self._set_rate(max(self.configured * self._min_share, self.rate * self._backoff))
            # leave a gap: the requests already in flight count against this second too
            self._hold_until = now + 1.0 / self.rate

    def succeeded(self) -> None:
        with self._state:
            if self.rate >= self.configured:
                return
            self._streak += 1
            if self._streak >= self._recover_after:
                self._streak = 0
                self._set_rate(min(self.configured, self.rate * 1.05))


class _Gate:
    """A lock of one event loop handed to the waiter of lowest priority (then FIFO)."""

    def __init__(self) -> None:
        self._busy = False
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def enter(self, priority: float) -> None:
        if not self._busy and not self._waiters:
            self._busy = True
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.leave()  # handed the gate just as it was cancelled: pass it on
            raise

    def leave(self) -> None:
        while self._waiters:
            future = heapq.heappop(self._waiters)[2]
            if not future.done():
                future.set_result(None)  # the gate stays busy: it changes hands
                return
        self._busy = False


class _Entry:
    """One request of a pacer's window: when it was granted, or sent once ``sent``."""

    __slots__ = ("sent", "stamp")

    def __init__(self, stamp: float) -> None:
        self.stamp = stamp
        self.sent = False


#: The former name (the class was a token bucket with a window rule on top).
TokenBucket = KeyPacer


class NoLimit:
    """A limiter that never waits (unit tests, the in-process simulator)."""

    rate = float("inf")

    async def acquire(self, priority: float = 0.0) -> None:
        return None

    async def wire(self, stamp: float) -> None:
        return None

    def sent(self, stamp: float) -> None:
        return None

    def slow_down(self) -> None:
        return None

    def succeeded(self) -> None:
        return None
