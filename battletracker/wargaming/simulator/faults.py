"""Injected failures: random ones at configured rates, and a script of forced ones.

The random faults make soak tests and benchmarks look like the real API on a bad night;
the script (``inject("drop", count=2)``) makes a unit test's failure happen exactly on the
next request, which random rates cannot. Both are seeded or explicit, never wall-clock
dependent, so a run is reproducible.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass

__all__ = ["FAULT_KINDS", "FaultPlan", "Faults"]

#: Every outcome that can be forced through ``inject``.
#: ``source_unavailable``: API error 504 SOURCE_NOT_AVAILABLE (after the rate limit took a token);
#: ``http_500``: a bare HTTP 500; ``garbage``: HTTP 200 whose body is not JSON;
#: ``drop``: the connection is closed without an answer;
#: ``method_disabled``: API error 405 METHOD_DISABLED;
#: ``request_limit``: API error 407 REQUEST_LIMIT_EXCEEDED whatever the bucket holds.
FAULT_KINDS: tuple[str, ...] = (
    "source_unavailable", "http_500", "garbage", "drop", "method_disabled", "request_limit",
)


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Rates (0..1, per API request) of random faults, latency bounds and the RNG seed."""

    source_unavailable: float = 0.0
    http_500: float = 0.0
    garbage: float = 0.0
    drop: float = 0.0
    #: (min, max) seconds added before each API answer; (0, 0) answers at once.
    latency: tuple[float, float] = (0.0, 0.0)
    seed: int = 0

    def __post_init__(self) -> None:
        rates = (self.source_unavailable, self.http_500, self.garbage, self.drop)
        if any(not 0 <= r <= 1 for r in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be within [0, 1] and sum to at most 1")
        low, high = self.latency
        if not 0 <= low <= high:
            raise ValueError("latency must be (min, max) with 0 <= min <= max")


class FaultPlan:
    """Decides, request by request, which fault (if any) happens and how long to wait."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self._script: deque[str] = deque()
        self._lock = threading.Lock()

    def inject(self, fault: str, count: int = 1) -> None:
        """Force the next ``count`` ``account/info`` requests (after those already scripted).

        Sign-in and ``/_sim/`` requests never consume the script, so a test can inject
        over HTTP and know exactly which API request fails.
        """
        if fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULT_KINDS)}")
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._script.extend([fault] * count)

    def pending(self) -> int:
        """How many scripted faults are still to come."""
        with self._lock:
            return len(self._script)

    def clear(self) -> None:
        """Forget every scripted fault that has not happened yet."""
        with self._lock:
            self._script.clear()

    def next_fault(self) -> str | None:
        """The fault for the next API request: the script first, then the random rates."""
        with self._lock:
            if self._script:
                return self._script.popleft()
            f = self.faults
            roll = self._rng.random()
            for name, rate in (("source_unavailable", f.source_unavailable),
                               ("http_500", f.http_500), ("garbage", f.garbage),
                               ("drop", f.drop)):
                if roll < rate:
                    return name
                roll -= rate
            return None

    def delay(self) -> float:
        """Seconds to wait before answering, drawn from the latency bounds."""
        low, high = self.faults.latency
        if high <= 0:
            return 0.0
        with self._lock:
            return self._rng.uniform(low, high)
