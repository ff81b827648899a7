"""KeyPacer: the sliding-window rule (a window's worth at once, then each slot a window
after its last send; shown with ``spread=0``, the rule alone), the spacing between grants
that keeps a window's worth from going at once, unsent grants holding their slot,
slow-down and recovery, on a fake clock and across threads; NoLimit never waits."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest

from battletracker.wargaming.ratelimit import KeyPacer, NoLimit, RateLimiter, TokenBucket


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
    spread: float = 0.0,
) -> KeyPacer:
    """A pacer on ``fake``'s clock; without spacing unless asked (the window rule alone)."""
    return KeyPacer(
        rate,
        margin=margin,
        spread=spread,
        backoff=backoff,
        min_share=min_share,
        recover_after=recover_after,
        calm=calm,
        clock=fake.clock,
        sleep=fake.sleep,
    )


def acquire_times(limiter: KeyPacer, fake: FakeTime, n: int, *, parallel: bool) -> list[float]:
    """When each of ``n`` acquires returned, by the fake clock (each sent at once)."""
    stamps: list[float] = []

    async def one() -> None:
        limiter.sent(await limiter.acquire())
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
@pytest.mark.parametrize(("rate", "n"), [(20.0, 20), (10.0, 10), (3.0, 3), (50.5, 50)])
def test_a_windows_worth_goes_at_once(rate: float, n: int, parallel: bool) -> None:
    """No even spacing on top of the window: nothing ready is held back that it allows."""
    fake = FakeTime()
    limiter = bucket(rate, fake)
    assert limiter.per_window == n
    stamps = acquire_times(limiter, fake, n + 1, parallel=parallel)
    assert stamps[:n] == pytest.approx([1000.0] * n)
    assert stamps[n] == pytest.approx(1000.0 + 1.02)


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


def test_without_margin_the_window_is_exactly_one_second() -> None:
    fake = FakeTime()
    stamps = acquire_times(bucket(20.0, fake, margin=0.0), fake, 41, parallel=True)
    assert stamps == pytest.approx([1000.0] * 20 + [1001.0] * 20 + [1002.0])


def test_slots_that_came_due_in_a_stall_go_at_once_never_past_the_window() -> None:
    """Spread sends; the loop stalls 0.15 s: the slots due meanwhile are not lost twice."""
    fake = FakeTime()
    limiter = bucket(20.0, fake, margin=0.02)
    stamps = []
    for _ in range(20):  # one send every 50 ms
        stamps += acquire_times(limiter, fake, 1, parallel=False)
        fake.now += 0.05
    fake.now += 0.15  # the event loop was busy
    stamps += acquire_times(limiter, fake, 40, parallel=False)
    # slots 0..2 came due during the stall (at +1.02, +1.07, +1.12): all three at once
    assert stamps[20:23] == pytest.approx([stamps[19] + 0.2] * 3)
    assert most_in_window(stamps, 1.02) <= 20
    # the rest keep their own schedule: each a window after its slot's last send
    assert stamps[23] == pytest.approx(stamps[3] + 1.02)
    assert stamps[39] == pytest.approx(stamps[19] + 1.02)


def test_threads_with_their_own_event_loops_share_one_budget() -> None:
    """Several chunks fetched at once (a thread each) never add up past the key's rate."""
    limiter = KeyPacer(40.0, margin=0.02)
    stamps: list[float] = []
    guard = threading.Lock()

    async def take(n: int) -> None:
        for _ in range(n):
            limiter.sent(await limiter.acquire())
            with guard:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=asyncio.run, args=(take(25),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(stamps) == 75
    assert most_in_window(stamps, 1.0) <= 40
    assert max(stamps) - min(stamps) >= 1.0  # 75 grants need a second window


def test_idle_time_is_saved_up_to_one_window_and_no_more() -> None:
    fake = FakeTime()
    limiter = bucket(10.0, fake)
    acquire_times(limiter, fake, 3, parallel=False)
    fake.now += 60.0  # a minute without requests
    start = fake.now
    stamps = acquire_times(limiter, fake, 15, parallel=True)
    assert stamps == pytest.approx([start] * 10 + [start + 1.02] * 5)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("rate", [20.0, 10.0, 3.0])
def test_a_windows_worth_goes_at_twice_the_rate_never_at_once(rate: float,
                                                             parallel: bool) -> None:  # fmt: skip
    """The default spacing: half a period between grants, the window's rule on top."""
    fake = FakeTime()
    limiter = KeyPacer(rate, margin=0.02, clock=fake.clock, sleep=fake.sleep)
    n = limiter.per_window
    stamps = acquire_times(limiter, fake, 3 * n, parallel=parallel)
    assert stamps[:n] == pytest.approx([1000.0 + i * 0.5 / rate for i in range(n)])
    # then each slot a window after its last send: the ramp repeats, never a burst
    assert stamps[n:] == pytest.approx([t + 1.02 for t in stamps[:-n]])
    assert min(b - a for a, b in itertools.pairwise(stamps)) >= 0.5 / rate - 1e-9
    assert most_in_window(stamps, 1.02) == n


def test_slots_due_after_a_stall_catch_up_within_the_stalls_length() -> None:
    """Spaced sends; the loop stalls 0.3 s: the slots due meanwhile go at twice the rate,
    the window's rule is kept, and about 0.3 s later (a slot's turn at most) the key is
    back on its old schedule: the stall costs its own length, nothing after it."""
    fake = FakeTime()
    limiter = KeyPacer(20.0, margin=0.02, clock=fake.clock, sleep=fake.sleep)
    stamps = []
    for _ in range(20):  # one send every 51 ms (one window per 20)
        stamps += acquire_times(limiter, fake, 1, parallel=False)
        fake.now += 0.051
    fake.now += 0.3  # the event loop was busy
    resumed = fake.now
    stamps += acquire_times(limiter, fake, 40, parallel=False)
    assert stamps[20] == pytest.approx(resumed)
    assert stamps[21] - stamps[20] == pytest.approx(0.025)
    assert most_in_window(stamps, 1.02) <= 20
    on_schedule = [j for j in range(20) if stamps[20 + j] == pytest.approx(stamps[j] + 1.02)]
    assert on_schedule == list(range(on_schedule[0], 20))
    assert stamps[20 + on_schedule[0]] - resumed <= 0.3 + 0.051
    assert stamps[40:] == pytest.approx([t + 1.02 for t in stamps[20:40]])


def test_a_new_rate_changes_the_spacing() -> None:
    fake = FakeTime()
    limiter = KeyPacer(20.0, margin=0.02, clock=fake.clock, sleep=fake.sleep)
    limiter.reconfigure(4.0)
    stamps = acquire_times(limiter, fake, 3, parallel=False)
    assert stamps == pytest.approx([1000.0, 1000.125, 1000.25])


@pytest.mark.parametrize("spread", [-0.1, 1.5])
def test_spread_must_be_within_one_period(spread: float) -> None:
    with pytest.raises(ValueError, match=r"spread must be within 0\.\.1"):
        KeyPacer(20.0, spread=spread)


def test_real_clock_paces_too() -> None:
    limiter = KeyPacer(5.0, margin=0.0, spread=0.0)
    started = time.monotonic()
    asyncio.run(_acquire_many(limiter, 6))
    assert time.monotonic() - started == pytest.approx(1.0, abs=0.15)


async def _acquire_many(limiter: RateLimiter, n: int) -> None:
    async def one() -> None:
        stamp = await limiter.acquire()
        if stamp is not None:
            limiter.sent(stamp)

    await asyncio.gather(*(one() for _ in range(n)))


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
    acquire_times(limiter, fake, 1, parallel=False)
    limiter.slow_down()  # 10/s, and a gap of one new interval (0.1 s) first
    stamps = acquire_times(limiter, fake, 10, parallel=True)
    assert stamps == pytest.approx([1000.1] * 9 + [1001.02])
    assert limiter.per_window == 10  # the window rule follows the rate


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
    """A caller may run ``asyncio.run`` once per chunk with the same pacer."""
    fake = FakeTime()
    limiter = bucket(20.0, fake, backoff=0.5)
    first = acquire_times(limiter, fake, 4, parallel=True)
    limiter.slow_down()
    second = acquire_times(limiter, fake, 7, parallel=True)  # a new loop: no lock error
    assert first == pytest.approx([1000.0] * 4)
    # after the slow-down to 10: a gap of 0.1, then 6 more fit the window, then wait
    assert second == pytest.approx([1000.1] * 6 + [1001.02])


def test_real_bucket_in_two_loops_with_contention() -> None:
    """With real asyncio.sleep, a lock bound to the first loop would fail in the second."""
    limiter = KeyPacer(4.0)
    for _ in range(2):
        asyncio.run(_acquire_many(limiter, 5))


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        KeyPacer(rate)
    with pytest.raises(ValueError, match="rate must be > 0"):
        KeyPacer(1.0).reconfigure(rate)


def test_margin_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="margin must be >= 0"):
        KeyPacer(20.0, margin=-0.1)


def test_the_former_name_is_the_pacer() -> None:
    assert TokenBucket is KeyPacer


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
    """Connection set-up held request 0 back 0.3 s: its slot is free again at 0.3 + 1.02."""
    fake = FakeTime()
    limiter = bucket(20.0, fake, margin=0.02)

    async def go() -> list[float]:
        first = await limiter.acquire()
        fake.now += 0.3
        limiter.sent(first)
        stamps = []
        for _ in range(20):
            limiter.sent(await limiter.acquire())
            stamps.append(fake.now)
        return stamps

    stamps = asyncio.run(go())
    assert stamps[:19] == pytest.approx([1000.3] * 19)
    assert stamps[-1] == pytest.approx(1000.0 + 0.3 + 1.02)


def test_a_grant_not_yet_on_the_wire_holds_its_slot() -> None:
    """However long a request waits for a connection, its slot frees a window after it left."""
    fake = FakeTime()
    limiter = bucket(2.0, fake, margin=0.0)
    left: list[float] = []

    async def send_late(stamp: float) -> None:
        while fake.now < 1003.0:  # waiting for a connection while the others go
            await asyncio.sleep(0)
        limiter.sent(stamp)
        left.append(fake.now)

    async def go() -> list[float]:
        late = asyncio.create_task(send_late(await limiter.acquire()))
        stamps = []
        for _ in range(4):
            limiter.sent(await limiter.acquire())
            stamps.append(fake.now)
        await late
        return stamps

    stamps = asyncio.run(go())
    # each request waits a window for the one before; the held one keeps its slot until
    # it leaves at 1003, however long ago it was granted
    assert stamps[:3] == pytest.approx([1000.0, 1001.0, 1002.0])
    assert left == pytest.approx([1003.0], abs=0.01)
    assert stamps[3] == pytest.approx(1003.0, abs=0.01)
    assert most_in_window([*stamps, *left], 1.0) <= 2


def test_sent_for_an_unknown_or_repeated_stamp_changes_nothing() -> None:
    fake = FakeTime()
    limiter = bucket(20.0, fake)
    stamps = acquire_times(limiter, fake, 5, parallel=False)
    fake.now += 0.5
    limiter.sent(123.0)  # not a grant of this limiter
    limiter.sent(stamps[-1])  # already sent
    assert [e.stamp for e in limiter._log] == pytest.approx(stamps)


def test_a_new_rate_keeps_the_windows_history() -> None:
    """A lease's new share applies to the running pacer: the last second still counts."""
    fake = FakeTime()
    limiter = bucket(20.0, fake)
    acquire_times(limiter, fake, 20, parallel=True)
    limiter.reconfigure(10.0)
    assert (limiter.configured, limiter.rate, limiter.per_window) == (10.0, 10.0, 10)
    stamps = acquire_times(limiter, fake, 10, parallel=True)
    assert stamps == pytest.approx([1001.02] * 10)
    limiter.reconfigure(20.0)  # a larger share: ten more in the same window, no more
    stamps = acquire_times(limiter, fake, 11, parallel=True)
    assert stamps == pytest.approx([1001.02] * 10 + [1002.04])


def test_a_lead_grants_early_and_the_wire_waits_for_the_slot() -> None:
    """With ``lead`` the request may set off early; :meth:`wire` holds it until its slot."""
    fake = FakeTime()
    limiter = KeyPacer(2.0, margin=0.0, lead=0.3, spread=0.0, clock=fake.clock,
                       sleep=fake.sleep)  # fmt: skip

    async def go() -> list[tuple[float, float, float]]:
        out = []
        for _ in range(4):
            stamp = await limiter.acquire()
            granted = fake.now
            await limiter.wire(stamp)
            limiter.sent(stamp)
            out.append((granted, stamp, fake.now))
        return out

    got = asyncio.run(go())
    granted, stamps, wired = zip(*got, strict=True)
    assert stamps == pytest.approx((1000.0, 1000.0, 1001.0, 1001.0))
    assert granted == pytest.approx((1000.0, 1000.0, 1000.7, 1001.0))  # 0.3 s early
    assert wired == pytest.approx(stamps)  # never on the wire before its slot
