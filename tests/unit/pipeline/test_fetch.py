"""fetch_chunk against the in-process simulator: truth, retries by error class, dead keys."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from battletracker.models import COUNTERS
from battletracker.pipeline.chunking import batches
from battletracker.pipeline.fetch import KeySlot, RetryPolicy, concurrency_for, fetch_chunk
from battletracker.pipeline.result import ChunkSpec, FetchResult, Row, validate_result
from battletracker.wargaming.client import WargamingClient
from battletracker.wargaming.errors import (
    KeyUnusable,
    MethodDisabled,
    RequestBug,
    RequestLimitExceeded,
    SourceNotAvailable,
    TransientError,
)
from battletracker.wargaming.ratelimit import NoLimit, RateLimiter, TokenBucket
from battletracker.wargaming.simulator import (
    BASE_URL,
    PS_MIN,
    XBOX_MIN,
    Faults,
    Population,
    Simulator,
)

POPULATION = Population(seed=21, xbox_ids=2_000, ps_ids=1_000, new_per_day=20)
#: 10 requests, the last one short.
XBOX = ChunkSpec(chunk_id=1, cycle_id=1, platform="xbox", first_id=XBOX_MIN, last_id=XBOX_MIN + 949)
PS = ChunkSpec(chunk_id=2, cycle_id=1, platform="ps", first_id=PS_MIN + 100, last_id=PS_MIN + 399)
N_BATCHES = len(batches(XBOX.first_id, XBOX.last_id))
FAST = RetryPolicy(base_delay=0.001, max_delay=0.01, transient_tries=6, limit_tries=10)


class SpyLimiter:
    """NoLimit that counts what the fetcher told it."""

    rate = float("inf")

    def __init__(self) -> None:
        self.acquired = self.slowdowns = self.successes = 0

    async def acquire(self, priority: float = 0.0) -> None:
        self.acquired += 1

    async def wire(self, stamp: float) -> None:
        raise AssertionError("no grant stamp, nothing to wait for")

    def sent(self, stamp: float) -> None:
        raise AssertionError("an in-process transport has no wire to report")

    def slow_down(self) -> None:
        self.slowdowns += 1

    def succeeded(self) -> None:
        self.successes += 1


def truth(spec: ChunkSpec, day: int = 0) -> list[Row]:
    """The rows a correct fetch must return, built from the population, not the fetcher."""
    rows = []
    for account_id in range(spec.first_id, spec.last_id + 1):
        obj = POPULATION.account(account_id, day)
        if obj is not None:
            counters = obj["statistics"]["all"]
            rows.append(
                (
                    account_id,
                    obj["nickname"],
                    obj["created_at"],
                    obj["last_battle_time"],
                    *(counters[name] for name in COUNTERS),
                )
            )
    return rows


def make_sim(**kwargs: Any) -> Simulator:
    kwargs.setdefault("keys", {"a": 1000.0, "b": 1000.0})
    return Simulator(POPULATION, **kwargs)


def slot(
    transport: Simulator | httpx.AsyncBaseTransport,
    key: str = "a",
    *,
    limiter: RateLimiter | None = None,
    concurrency: int = 4,
    base_url: str = BASE_URL,
) -> KeySlot:
    if isinstance(transport, Simulator):
        transport = transport.transport()
    client = WargamingClient(base_url, key, transport=transport)
    return KeySlot(client, limiter or NoLimit(), concurrency=concurrency)


def fetch(
    slots: Sequence[KeySlot], spec: ChunkSpec = XBOX, policy: RetryPolicy = FAST
) -> FetchResult:
    async def go() -> FetchResult:
        try:
            return await fetch_chunk(spec, slots, node="node-1", policy=policy)
        finally:
            for s in slots:
                await s.client.aclose()

    return asyncio.run(go())


def assert_complete(result: FetchResult, spec: ChunkSpec = XBOX) -> None:
    expected = truth(spec)
    assert result.spec == spec
    assert result.rows == expected
    assert result.empty == spec.size - len(expected)
    again = validate_result(json.loads(json.dumps(result.to_message())))
    assert again.rows == result.rows and again.empty == result.empty
    assert again.stats == result.stats


# -- the happy path ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", [XBOX, PS], ids=["xbox", "ps"])
def test_rows_equal_the_simulators_truth(spec: ChunkSpec) -> None:
    sim = make_sim()
    limiter = SpyLimiter()
    result = fetch([slot(sim, limiter=limiter)], spec)
    assert_complete(result, spec)
    assert 0 < result.empty < spec.size  # the range holds both accounts and empty ids
    n = len(batches(spec.first_id, spec.last_id))
    assert result.stats == {"requests": n, "limit_errors": 0, "retries": 0}
    assert result.node == "node-1" and result.seconds >= 0
    stats = sim.stats()
    assert stats["outcomes"] == {"ok": n}
    assert stats["ids_served"] == spec.size  # every id asked exactly once
    assert stats["accounts_served"] == len(result.rows)
    assert (limiter.acquired, limiter.successes, limiter.slowdowns) == (n, n, 0)


def test_a_later_day_is_fetched_as_that_day() -> None:
    sim = make_sim(day=3)
    result = fetch([slot(sim)])
    assert result.rows == truth(XBOX, day=3)
    assert result.rows != truth(XBOX, day=0)


def test_single_id_chunk() -> None:
    account_id = truth(XBOX)[0][0]
    spec = ChunkSpec(
        chunk_id=9, cycle_id=1, platform="xbox", first_id=account_id, last_id=account_id
    )
    result = fetch([slot(make_sim())], spec)
    assert [r[0] for r in result.rows] == [account_id] and result.empty == 0


def test_requests_run_concurrently() -> None:
    sim = make_sim(faults=Faults(latency=(0.1, 0.1)))
    started = time.monotonic()
    fetch([slot(sim, concurrency=5)])
    # 10 requests of 0.1 s: ~0.2 s with 5 in flight, 1 s one after the other
    assert time.monotonic() - started < 0.6


def test_two_keys_share_the_work() -> None:
    sim = make_sim(faults=Faults(latency=(0.01, 0.01)))  # answers take time: both keys work
    result = fetch([slot(sim, "a", concurrency=2), slot(sim, "b", concurrency=2)])
    assert_complete(result)
    by_key = sim.stats()["by_key"]
    assert by_key["a"] + by_key["b"] == N_BATCHES
    assert by_key["a"] > 0 and by_key["b"] > 0


# -- transient faults: retried, the result still complete -----------------------------------


@pytest.mark.parametrize("fault", ["source_unavailable", "http_500", "garbage", "drop"])
@pytest.mark.parametrize("n", [1, 4])
def test_transient_faults_are_retried(fault: str, n: int) -> None:
    sim = make_sim()
    sim.inject(fault, n)
    result = fetch([slot(sim)])
    assert_complete(result)
    assert result.stats == {"requests": N_BATCHES + n, "limit_errors": 0, "retries": n}
    outcome = "SOURCE_NOT_AVAILABLE" if fault == "source_unavailable" else fault
    assert sim.stats()["outcomes"] == {"ok": N_BATCHES, outcome: n}
    assert sim.faults.pending() == 0


def test_one_request_may_fail_up_to_its_bound_and_still_succeed() -> None:
    sim = make_sim()
    sim.inject("source_unavailable", FAST.transient_tries - 1)
    result = fetch([slot(sim, concurrency=1)])
    assert_complete(result)
    assert result.stats["retries"] == FAST.transient_tries - 1


@pytest.mark.parametrize("fault", ["source_unavailable", "drop"])
def test_exhausting_transient_retries_raises(fault: str) -> None:
    sim = make_sim()
    policy = RetryPolicy(base_delay=0.001, transient_tries=3)
    sim.inject(fault, 3)
    with pytest.raises(TransientError) as caught:
        fetch([slot(sim, concurrency=1)], policy=policy)
    if fault == "source_unavailable":
        assert isinstance(caught.value, SourceNotAvailable)
    assert sim.stats()["requests"] == 3  # the same batch, tried three times, then given up


class CorruptFirst(httpx.AsyncBaseTransport):
    """The simulator, but the first successful answer has a counter that is not a number."""

    def __init__(self, sim: Simulator, value: object = "many") -> None:
        self.inner = sim.transport()
        self.corrupted = 0
        self.value = value

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = json.loads(await response.aread())
        accounts = [v for v in body.get("data", {}).values() if v] if self.corrupted == 0 else []
        if accounts:
            self.corrupted += 1
            accounts[0]["statistics"]["all"]["battles"] = self.value
        return httpx.Response(200, json=body, request=request)


def test_a_malformed_account_is_a_bad_answer_and_retried() -> None:
    sim = make_sim()
    transport = CorruptFirst(sim)
    result = fetch([slot(transport)])
    assert transport.corrupted == 1
    assert_complete(result)
    assert result.stats["retries"] == 1


def test_an_odd_value_is_sent_as_the_api_gave_it() -> None:
    """A negative counter is the API's word on one account: the server judges it, and the
    fetcher must not fail (or retry) the whole chunk over it."""
    sim = make_sim()
    transport = CorruptFirst(sim, value=-1)
    result = fetch([slot(transport)])
    assert transport.corrupted == 1 and result.stats["retries"] == 0
    odd = [r for r in result.rows if r[4] == -1]
    assert len(odd) == 1
    expected = {r[0]: r for r in truth(XBOX)}
    assert odd[0][5:] == expected[odd[0][0]][5:]


# -- the rate limit ---------------------------------------------------------------------


def test_request_limit_slows_the_limiter_and_repeats() -> None:
    sim = make_sim()
    sim.inject("request_limit", 2)
    limiter = SpyLimiter()
    result = fetch([slot(sim, limiter=limiter)])
    assert_complete(result)
    assert limiter.slowdowns == 2
    assert result.stats == {"requests": N_BATCHES + 2, "limit_errors": 2, "retries": 0}
    assert sim.stats()["outcomes"] == {"ok": N_BATCHES, "limit": 2}


def test_request_limit_lowers_a_token_buckets_rate() -> None:
    sim = make_sim()
    sim.inject("request_limit")
    bucket = TokenBucket(1000.0)
    assert_complete(fetch([slot(sim, limiter=bucket)]))
    assert bucket.slowdowns == 1
    assert bucket.rate < bucket.configured


def test_limit_errors_of_requests_in_flight_together_lower_the_rate_once() -> None:
    sim = make_sim(faults=Faults(latency=(0.02, 0.02)))
    sim.inject("request_limit", 4)  # the first four requests, all in flight at once
    bucket = TokenBucket(1000.0, backoff=0.8, recover_after=10**6)
    result = fetch([slot(sim, limiter=bucket, concurrency=4)])
    assert_complete(result)
    assert result.stats["limit_errors"] == bucket.slowdowns == 4
    assert bucket.rate == pytest.approx(800.0)  # one step of 0.8, not 0.8**4


def test_too_many_limit_errors_give_up() -> None:
    sim = make_sim()
    sim.inject("request_limit", 2)
    with pytest.raises(RequestLimitExceeded):
        fetch([slot(sim, concurrency=1)], policy=RetryPolicy(base_delay=0.001, limit_tries=2))
    assert sim.stats()["requests"] == 2


# -- errors that must not be retried ---------------------------------------------------------


def test_request_bug_propagates_at_once() -> None:
    sim = make_sim()
    with pytest.raises(RequestBug) as caught:
        fetch([slot(sim, concurrency=1, base_url="http://simulator.invalid/wotz/")])
    assert caught.value.api_message == "METHOD_NOT_FOUND"
    assert sim.stats()["requests"] == 1


def test_request_bug_with_several_in_flight_is_not_retried() -> None:
    sim = make_sim()
    with pytest.raises(RequestBug):
        fetch([slot(sim, "", concurrency=4)])  # APPLICATION_ID_NOT_SPECIFIED
    assert sim.stats()["requests"] <= 4  # at most one try per worker, never a retry


def test_method_disabled_propagates_at_once() -> None:
    sim = make_sim()
    sim.inject("method_disabled")
    with pytest.raises(MethodDisabled):
        fetch([slot(sim, concurrency=1)])
    assert sim.stats()["requests"] == 1


# -- unusable keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "outcome"),
    [
        ({"blocked_keys": {"a"}}, "APPLICATION_IS_BLOCKED"),
        ({"keys": {"b": 1000.0}}, "INVALID_APPLICATION_ID"),
    ],
)
def test_a_dead_key_hands_its_batches_to_the_other(kwargs: dict[str, Any], outcome: str) -> None:
    sim = make_sim(**kwargs)
    bad, good = slot(sim, "a"), slot(sim, "b")
    result = fetch([bad, good])
    assert_complete(result)
    assert bad.dead and not good.dead
    stats = sim.stats()
    assert stats["outcomes"]["ok"] == N_BATCHES
    assert stats["by_key"]["b"] == N_BATCHES  # all of the chunk went through "b"
    assert 1 <= stats["outcomes"][outcome] <= bad.concurrency  # "a" stopped after a try each


def test_all_keys_dead_raises_key_unusable() -> None:
    sim = make_sim(blocked_keys={"a", "b"})
    slots = [slot(sim, "a"), slot(sim, "b")]
    with pytest.raises(KeyUnusable) as caught:
        fetch(slots)
    assert caught.value.app_id in ("a", "b")
    assert all(s.dead for s in slots)
    assert sim.stats()["outcomes"] == {"APPLICATION_IS_BLOCKED": sim.stats()["requests"]}


def test_no_live_key_raises_before_any_request() -> None:
    sim = make_sim()
    dead = slot(sim)
    dead.dead = True
    with pytest.raises(KeyUnusable):
        fetch([dead])
    assert sim.stats()["requests"] == 0


def test_a_key_known_dead_is_not_used() -> None:
    sim = make_sim()
    dead, live = slot(sim, "a"), slot(sim, "b")
    dead.dead = True
    assert_complete(fetch([dead, live]))
    assert sim.stats()["by_key"] == {"b": N_BATCHES}


# -- sizing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "low"), [(1.0, 2), (10.0, 10), (20.0, 20), (40.0, 40), (1000.0, 64)]
)
def test_concurrency_for_covers_the_latency(rate: float, low: int) -> None:
    got = concurrency_for(rate)
    assert low <= got <= 64
    # a whole window's worth may go at once after a stall: all of it fits in flight
    assert got >= min(64, int(rate))
