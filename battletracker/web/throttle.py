"""Login throttling: failed logins counted per client address and per user name.

Each attempt is counted *before* its password is checked (and forgiven when it
succeeds), so a burst of parallel guesses cannot all slip through while the first ones
are still being hashed. Past the limit an attempt is refused at once, without any
hashing, until the oldest failure leaves the window. The counts live in this process:
with ``battletracker web --workers N`` each of the N processes keeps its own, so each
gets 1/N of the configured limits (:meth:`LoginThrottle.for_workers`, rounded down, at
least 1): whichever worker a guess lands on, all of them together never let through
more than the configured number (unless a limit is below N: then N, one per worker).
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Attempt", "LoginThrottle"]

#: Keys tracked at most; the least recently used are forgotten first (bounded memory
#: under a spray of addresses or names).
MAX_KEYS = 100_000


@dataclass(frozen=True)
class Attempt:
    """A login attempt let through: hand it back to :meth:`LoginThrottle.succeeded`."""

    keys: tuple[str, ...]
    at: float


class LoginThrottle:
    """Sliding-window failure counts with a lockout, per address and per account.

    Not thread-safe: called only from the event loop (the login route is async).
    """

    def __init__(self, *, per_address: int, per_account: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {"addr": per_address, "user": per_account}
        self.window = window
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @classmethod
    def for_workers(cls, *, per_address: int, per_account: int, window: float,
                    workers: int = 1) -> LoginThrottle:
        """The throttle of one of ``workers`` server processes: 1/N of each limit."""
        n = max(1, workers)
        return cls(per_address=max(1, per_address // n), per_account=max(1, per_account // n),
                   window=window)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def begin(self, address: str, account: str) -> Attempt | float:
        """Count an attempt; returns it, or the seconds to wait when either key is locked."""
        now = self.clock()
        keys = (f"addr:{address}", f"user:{account.lower()}")
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.limits[key.split(":", 1)[0]]:
                wait = max(wait, times[0] + self.window - now)
        if wait > 0:
            return wait
        for key in keys:
            times = self._failures.setdefault(key, deque())
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)
        return Attempt(keys, now)

    def succeeded(self, attempt: Attempt) -> None:
        """Forgive ``attempt`` (the password was right) and the account's earlier failures."""
        for key in attempt.keys:
            times = self._failures.get(key)
            if times is None:
                continue
            if key.startswith("user:"):
                times.clear()
            else:
                with contextlib.suppress(ValueError):
                    times.remove(attempt.at)
            if not times:
                del self._failures[key]
