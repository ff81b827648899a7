"""TokenBucket pacing, the one-second window rule, slow-down and recovery, on a fake
clock and across threads; NoLimit never waits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from battletracker.wargaming.ratelimit import NoLimit, RateLimiter, TokenBucket


class FakeTime:
    """A clock that moves only when the bucket sleeps; records each sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other acquirers queue, as a real sleep would


def bucket(
    rate: float,
    fake: FakeTime,
    *,
    backoff: float = 0.8,
    min_share: float = 0.2,
    recover_after: int = 200,
    calm: float = 1.0,
    margin: float = 0.02,
) -> TokenBucket:
    return TokenBucket(
        rate,
        margin=margin,
        backoff=backoff,
        min_share=min_share,
        recover_after=recover_after,
        calm=calm,
        clock=fake.clock,
        sleep=fake.sleep,
    )


def acquire_times(limiter: TokenBucket, fake: FakeTime, n: int, *, parallel: bool) -> list[float]:
    """When each of ``n`` acquires returned, by the fake clock."""
    stamps: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        stamps.append(fake.now)

    async def go() -> None:
        if parallel:
            await asyncio.gather(*(one() for _ in range(n)))
        else:
            for _ in range(n):
                await one()

    asyncio.run(go())
    return stamps


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(("rate", "n"), [(20.0, 20), (10.0, 10), (3.0, 2), (50.0, 1)])
def test_n_acquires_take_n_minus_one_over_rate(rate: float, n: int, parallel: bool) -> None:
    fake = FakeTime()
    stamps = acquire_times(bucket(rate, fake), fake, n, parallel=parallel)
    assert stamps[-1] - 1000.0 == pytest.approx((n - 1) / rate)
    # evenly spaced, no burst: the first goes at once, then one every 1/rate
    assert stamps == pytest.approx([1000.0 + i / rate for i in range(n)])


def most_in_window(stamps: list[float], window: float) -> int:
    """The most stamps inside any half-open window of ``window`` seconds."""
    ordered = sorted(stamps)
    return max(
        sum(1 for t in ordered if start <= t < start + window - 1e-9) for start in ordered
    )


@pytest.mark.parametrize("parallel", [False, True])
def test_never_more_than_rate_grants_in_one_second_plus_margin(parallel: bool) -> None:
    """The strict reading of the API's limit: 20 per sliding second, with 20 ms to spare."""
    fake = FakeTime()
    stamps = acquire_times(bucket(20.0, fake, margin=0.02), fake, 61, parallel=parallel)
    assert most_in_window(stamps, 1.02) == 20
    # the 21st waits for the first to leave the window: the key runs at 20/1.02 per second
    assert stamps[20] - stamps[0] == pytest.approx(1.02)
    assert stamps[60] - stamps[0] == pytest.approx(3 * 1.02)


def test_without_margin_the_pacing_is_exactly_the_rate() -> None:
    fake = FakeTime()
    stamps = acquire_times(bucket(20.0, fake, margin=0.0), fake, 41, parallel=True)
    assert stamps == pytest.approx([1000.0 + i / 20 for i in range(41)])


def test_a_late_wake_is_caught_up_but_never_past_the_window() -> None:
    """A task that woke 0.15 s late gets its lost slots back to back, within the window rule."""
    fake = FakeTime()
    limiter = bucket(20.0, fake, margin=0.02)
    stamps = acquire_times(limiter, fake, 10, parallel=False)
    fake.now += 0.15  # the event loop was busy
    stamps += acquire_times(limiter, fake, 40, parallel=False)
    # the slot schedule is kept: three slots were granted at once after the stall
    assert stamps[10] == pytest.approx(stamps[11]) == pytest.approx(stamps[12])
    assert most_in_window(stamps, 1.02) <= 20
    assert stamps[-1] - stamps[0] == pytest.approx(49 / 20 * 1.02, abs=0.06)


def test_threads_with_their_own_event_loops_share_one_budget() -> None:
    """Several chunks fetched at once (a thread each) never add up past the key's rate."""
    limiter = TokenBucket(40.0, margin=0.02)
    stamps: list[float] = []
    guard = threading.Lock()

    async def take(n: int) -> None:
        for _ in range(n):
            await limiter.acquire()
            with guard:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=asyncio.run, args=(take(25),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(stamps) == 75
    assert most_in_window(stamps, 1.0) <= 40
    assert max(stamps) - min(stamps) >= 74 / 40 * 0.95


def test_idle_time_is_not_saved_up_as_a_burst() -> None:
    fake = FakeTime()
    limiter = bucket(10.0, fake)
    acquire_times(limiter, fake, 3, parallel=False)
    fake.now += 60.0  # a minute without requests
    start = fake.now
    stamps = acquire_times(limiter, fake, 5, parallel=True)
    assert stamps == pytest.approx([start + i / 10 for i in range(5)])


def test_real_clock_paces_too() -> None:
    limiter = TokenBucket(50.0)
    started = time.monotonic()
    asyncio.run(_acquire_many(limiter, 11))
    assert time.monotonic() - started == pytest.approx(10 / 50, abs=0.08)


async def _acquire_many(limiter: RateLimiter, n: int) -> None:
    await asyncio.gather(*(limiter.acquire() for _ in range(n)))


def test_slow_down_lowers_the_rate_to_the_floor_and_no_further() -> None:
    fake = FakeTime()
    limiter = bucket(20.0, fake, backoff=0.5, min_share=0.2)
    rates = []
    for _ in range(5):
        limiter.slow_down()
        rates.append(limiter.rate)
        fake.now += 1.0  # a new overload each second
    assert rates == pytest.approx([10.0, 5.0, 4.0, 4.0, 4.0])
    assert limiter.slowdowns == 5
    assert limiter.configured == 20.0


def test_one_overload_lowers_the_rate_once() -> None:
    """The requests in flight when the key went over are all refused: one drop, not nine."""
    fake = FakeTime()
    limiter = bucket(20.0, fake, backoff=0.8, calm=1.0)
    for _ in range(9):
        limiter.slow_down()
        fake.now += 0.05  # their answers arrive over the next half second
    assert limiter.rate == pytest.approx(16.0)
    assert limiter.slowdowns == 9  # every limit error is still counted
    fake.now = 1001.0  # a second after the first drop: a new overload counts again
    limiter.slow_down()
    assert limiter.rate == pytest.approx(12.8)


def test_pacing_follows_the_lowered_rate_after_a_gap() -> None:
    fake = FakeTime()
    limiter = bucket(20.0, fake, backoff=0.5)
    assert limiter.per_window == 20
    acquire_times(limiter, fake, 1, parallel=False)  # next slot at +0.05
    limiter.slow_down()  # 10/s, and a gap of one new interval on top
    stamps = acquire_times(limiter, fake, 3, parallel=True)
    assert stamps == pytest.approx([1000.15, 1000.25, 1000.35])
    assert limiter.per_window == 10  # the window rule follows the rate too


def test_recovery_after_successes_up_to_the_configured_rate() -> None:
    fake = FakeTime()
    limiter = bucket(20.0, fake, backoff=0.5, recover_after=10)
    limiter.slow_down()
    assert limiter.rate == pytest.approx(10.0)
    for _ in range(9):
        limiter.succeeded()
    assert limiter.rate == pytest.approx(10.0)  # not yet
    limiter.succeeded()
    assert limiter.rate == pytest.approx(10.5)  # +5 %
    for _ in range(10 * 30):
        limiter.succeeded()
    assert limiter.rate == pytest.approx(20.0)  # capped at the configured rate


def test_a_limit_error_resets_the_success_streak() -> None:
    fake = FakeTime()
    limiter = bucket(20.0, fake, backoff=0.5, recover_after=10)
    limiter.slow_down()
    for _ in range(9):
        limiter.succeeded()
    fake.now += 1.0
    limiter.slow_down()  # 5/s, streak back to 0
    for _ in range(9):
        limiter.succeeded()
    assert limiter.rate == pytest.approx(5.0)
    limiter.succeeded()
    assert limiter.rate == pytest.approx(5.25)


def test_successes_at_full_rate_change_nothing() -> None:
    fake = FakeTime()
    limiter = bucket(20.0, fake, recover_after=1)
    for _ in range(50):
        limiter.succeeded()
    assert limiter.rate == 20.0


def test_works_across_two_event_loops_and_keeps_its_rate() -> None:
    """A Celery fetch task runs ``asyncio.run`` once per chunk with the same bucket."""
    fake = FakeTime()
    limiter = bucket(20.0, fake, backoff=0.5)
    first = acquire_times(limiter, fake, 4, parallel=True)
    limiter.slow_down()
    second = acquire_times(limiter, fake, 4, parallel=True)  # a new loop: no lock error
    assert first == pytest.approx([1000.0, 1000.05, 1000.1, 1000.15])
    # after the slow-down: a gap of 0.1, then one every 0.1
    assert second == pytest.approx([1000.3, 1000.4, 1000.5, 1000.6])


def test_real_bucket_in_two_loops_with_contention() -> None:
    """With real asyncio.sleep, a lock bound to the first loop would fail in the second."""
    limiter = TokenBucket(200.0)
    for _ in range(2):
        asyncio.run(_acquire_many(limiter, 5))


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        TokenBucket(rate)


def test_margin_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="margin must be >= 0"):
        TokenBucket(20.0, margin=-0.1)


def test_below_one_request_per_second_the_window_stretches() -> None:
    fake = FakeTime()
    stamps = acquire_times(bucket(0.5, fake, margin=0.0), fake, 3, parallel=False)
    assert stamps == pytest.approx([1000.0, 1002.0, 1004.0])


def test_no_limit_never_waits() -> None:
    limiter: RateLimiter = NoLimit()
    started = time.monotonic()
    asyncio.run(_acquire_many(limiter, 1000))
    limiter.slow_down()
    limiter.succeeded()
    assert time.monotonic() - started < 0.5
    assert limiter.rate == float("inf")


def test_a_grant_that_reached_the_wire_late_counts_from_then() -> None:
    """Connection set-up held request 0 back 0.3 s: request 20 waits for 0.3 + 1.02."""
    fake = FakeTime()
    limiter = bucket(20.0, fake, margin=0.02)

    async def go() -> list[float]:
        first = await limiter.acquire()
        fake.now += 0.3
        limiter.sent(first)
        stamps = []
        for _ in range(20):
            await limiter.acquire()
            stamps.append(fake.now)
        return stamps

    stamps = asyncio.run(go())
    assert stamps[-1] == pytest.approx(1000.0 + 0.3 + 1.02)
    assert stamps[0] == pytest.approx(1000.3)  # the schedule itself was not held back


def test_sent_for_a_grant_long_gone_changes_nothing() -> None:
    fake = FakeTime()
    limiter = bucket(20.0, fake)
    stamps = acquire_times(limiter, fake, 5, parallel=False)
    limiter.sent(123.0)  # not a grant of this limiter
    limiter.sent(stamps[-1])  # sent at once: now == stamp
    assert list(limiter._granted) == pytest.approx(stamps)
