"""Login throttling: counts per address and per account, lockout, forgiveness, memory."""

from __future__ import annotations

from battletracker.web import throttle
from battletracker.web.throttle import Attempt, LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: Clock, per_address: int = 10, per_account: int = 3) -> LoginThrottle:
    return LoginThrottle(per_address=per_address, per_account=per_account, window=60,
                         clock=clock)


def test_account_locks_after_its_failures_then_reopens() -> None:
    clock = Clock()
    t = _throttle(clock)
    for i in range(3):
        assert isinstance(t.begin(f"10.0.0.{i}", "Alice"), Attempt)  # failures, any address
        clock.now += 1
    wait = t.begin("10.0.0.9", "alice")  # user names are compared case-insensitively
    assert wait == 60 - 3  # until the oldest failure leaves the window
    clock.now += 57
    assert isinstance(t.begin("10.0.0.9", "alice"), Attempt)


def test_address_locks_across_accounts() -> None:
    clock = Clock()
    t = _throttle(clock, per_address=4, per_account=100)
    for i in range(4):
        assert isinstance(t.begin("192.0.2.1", f"user{i}"), Attempt)
    assert isinstance(t.begin("192.0.2.1", "someone-else"), float)
    assert isinstance(t.begin("192.0.2.2", "someone-else"), Attempt)


def test_attempts_in_flight_count_before_their_outcome() -> None:
    """A parallel burst cannot slip through while its first attempts are being hashed."""
    t = _throttle(Clock())
    started = [t.begin("192.0.2.1", "alice") for _ in range(10)]
    assert sum(isinstance(a, Attempt) for a in started) == 3


def test_success_forgives_the_account_and_the_attempt() -> None:
    clock = Clock()
    t = _throttle(clock, per_address=3, per_account=3)
    t.begin("192.0.2.1", "alice")
    t.begin("192.0.2.1", "alice")
    ok = t.begin("192.0.2.1", "alice")
    assert isinstance(ok, Attempt)
    t.succeeded(ok)
    # the account's failures are gone; the address keeps its two real failures
    assert isinstance(t.begin("192.0.2.1", "alice"), Attempt)
    assert isinstance(t.begin("192.0.2.1", "alice"), float)


def test_memory_stays_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(throttle, "MAX_KEYS", 50)
    t = _throttle(Clock())
    for i in range(200):
        t.begin(f"198.51.100.{i}", f"user{i}")
    assert len(t._failures) <= 50


def test_workers_split_the_limits_so_all_together_never_exceed_them() -> None:
    """``battletracker web --workers N``: each process counts alone, so each gets 1/N."""
    t = LoginThrottle.for_workers(per_address=20, per_account=5, window=60, workers=2)
    assert t.limits == {"addr": 10, "user": 2}
    assert 2 * t.limits["addr"] <= 20 and 2 * t.limits["user"] <= 5
    one = LoginThrottle.for_workers(per_address=20, per_account=5, window=60, workers=1)
    assert one.limits == {"addr": 20, "user": 5}
    many = LoginThrottle.for_workers(per_address=20, per_account=5, window=60, workers=8)
    assert many.limits == {"addr": 2, "user": 1}  # never 0: a login must stay possible
