"""A node's pacing on a virtual clock: real ``fetch_chunk`` and ``KeyPacer``, chunk after chunk.

The event loop's clock jumps to the next timer, so a night of several chunks runs in
milliseconds and every run is exactly reproducible. The stand-in client spends a drawn
lag on its own path after the grant (a busy loop, connection set-up), waits at the wire
for the slot (the pacer may grant up to ``lead`` early), writes, reports the send, and
answers after 100-300 ms; the API counts the request a little later still (up to the
margin).
Between chunks a runner spends a drawn gap (the result sent, the next message taken),
as a Celery thread does. Checked, as the strict stand-in would: no sliding second ever
holds more than ``floor(rate)`` requests, however long the lags and stalls; and with
requests always ready and small lags, >= 97 % of the budget is used over the fetch
window, across every chunk boundary.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from collections import deque
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from battletracker.pipeline.fetch import KeySlot, concurrency_for, fetch_chunk
from battletracker.pipeline.keys import WIRE_LEAD
from battletracker.pipeline.result import ChunkSpec
from battletracker.wargaming.ratelimit import DEFAULT_MARGIN, KeyPacer

FIRST_ID = 1_000_000


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer instead of waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0
        selector = selectors.DefaultSelector()
        real_select = selector.select

        def select(timeout: float | None = None) -> Any:
            if timeout is None:
                raise RuntimeError("deadlock: nothing scheduled and nothing to wait for")
            self.now += timeout
            return real_select(0)

        selector.select = select  # type: ignore[method-assign]
        super().__init__(selector)

    def time(self) -> float:
        return self.now


class StandIn:
    """``account_info`` as the fetcher sees it: lag to the wire, then a 100-300 ms answer."""

    app_id = "key"
    gates_at_wire = True

    def __init__(self, loop: VirtualLoop, rng: random.Random, lag: float, stalls: float) -> None:
        self.loop, self.rng, self.lag, self.stalls = loop, rng, lag, stalls
        self.arrivals: list[float] = []
        self.ids: list[int] = []

    async def account_info(
        self, ids: Sequence[int], *, on_send: Any = None, before_send: Any = None
    ) -> dict[int, None]:
        lag = self.rng.uniform(0, self.lag)
        if self.rng.random() < self.stalls:
            lag += self.rng.uniform(0.05, 0.5)  # the host stalled this request
        await asyncio.sleep(lag)  # the client's path: pool, connection, encoding
        if before_send is not None:
            await before_send()  # at the wire: wait for the slot
        await asyncio.sleep(self.rng.uniform(0, self.lag / 10))  # the write itself
        on_send()  # headers written: the pacer counts it from now
        self.arrivals.append(self.loop.now + self.rng.uniform(0, DEFAULT_MARGIN * 0.99))
        self.ids.extend(ids)
        await asyncio.sleep(self.rng.uniform(0.1, 0.3))
        return dict.fromkeys(ids)


def night(
    *,
    rate: float,
    chunks: int,
    batches: int,
    in_flight: int,
    gap: float,
    lag: float,
    stalls: float,
    seed: int,
    lead: float = WIRE_LEAD,
) -> StandIn:
    """Fetch ``chunks`` chunks of ``batches`` requests with ``in_flight`` runners."""
    loop = VirtualLoop()
    rng = random.Random(seed)
    client = StandIn(loop, rng, lag, stalls)
    pacer = KeyPacer(rate, clock=loop.time, lead=lead)
    todo = deque(
        ChunkSpec(i + 1, 1, "xbox", FIRST_ID + i * batches * 100,
                  FIRST_ID + (i + 1) * batches * 100 - 1)
        for i in range(chunks)
    )  # fmt: skip

    async def runner() -> None:
        while todo:
            spec = todo.popleft()
            slot = KeySlot(client, pacer, concurrency=concurrency_for(rate))  # type: ignore[arg-type]
            result = await fetch_chunk(spec, [slot])
            assert result.empty == spec.size
            await asyncio.sleep(rng.uniform(0, gap))  # result out, next message in

    async def main() -> None:
        await asyncio.gather(*(runner() for _ in range(in_flight)))

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return client


def most_in_one_second(arrivals: list[float]) -> int:
    """The most arrivals in any window ``(t - 1, t]``, as the strict stand-in counts."""
    ordered = sorted(arrivals)
    most, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def share(arrivals: list[float], rate: float) -> float:
    """The key's budget used: ``floor(rate)`` slots, each one second at best per request.

    The mean time a slot takes to come round (``a[i + N] - a[i]``) does not care how the
    requests are arranged within the window, unlike requests / (last - first), which a
    burst at each end of the run flatters by up to a window's worth.
    """
    n, ordered = int(rate), sorted(arrivals)
    cycle = (sum(ordered[-n:]) - sum(ordered[:n])) / (len(ordered) - n)
    return 1.0 / cycle


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.sampled_from([3.0, 10.0, 20.0, 20.5, 40.0]),
    chunks=st.integers(1, 8),
    batches=st.integers(1, 40),
    in_flight=st.integers(1, 3),
    gap=st.floats(0, 1.0),
    lag=st.floats(0, 0.2),
    stalls=st.floats(0, 0.3),
    seed=st.integers(0, 2**32),
    lead=st.sampled_from([0.0, WIRE_LEAD, 0.2]),
)
def test_no_second_ever_holds_more_than_the_rate(
    rate: float,
    chunks: int,
    batches: int,
    in_flight: int,
    gap: float,
    lag: float,
    stalls: float,
    seed: int,
    lead: float,
) -> None:
    client = night(rate=rate, chunks=chunks, batches=batches, in_flight=in_flight, gap=gap,
                   lag=lag, stalls=stalls, seed=seed, lead=lead)  # fmt: skip
    assert len(client.arrivals) == chunks * batches  # every batch once, none twice
    assert sorted(client.ids) == list(range(FIRST_ID, FIRST_ID + chunks * batches * 100))
    assert most_in_one_second(client.arrivals) <= int(rate)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.sampled_from([10.0, 20.0]),
    chunks=st.integers(10, 14),
    batches=st.integers(30, 60),
    in_flight=st.integers(2, 3),
    gap=st.floats(0, 0.6),
    lag=st.floats(0, WIRE_LEAD * 0.8),
    seed=st.integers(0, 2**32),
)
def test_requests_always_ready_use_the_budget_across_chunk_boundaries(
    rate: float, chunks: int, batches: int, in_flight: int, gap: float, lag: float, seed: int
) -> None:
    """The node's set-up: several chunks in progress, the next one waiting for the budget
    while the last answers of the one before are in flight; the client's own path hidden
    in the pacer's lead."""
    client = night(rate=rate, chunks=chunks, batches=batches, in_flight=in_flight, gap=gap,
                   lag=lag, stalls=0.0, seed=seed)  # fmt: skip
    assert most_in_one_second(client.arrivals) <= int(rate)
    assert share(client.arrivals, rate) >= 0.97


def test_one_chunk_at_a_time_loses_the_gap_between_chunks() -> None:
    """Why a node keeps several chunks in progress: alone, a boundary longer than what is
    left of the window idles the key; with the next chunk waiting it never does."""
    alone = night(rate=20.0, chunks=10, batches=40, in_flight=1, gap=1.5, lag=0.0,
                  stalls=0.0, seed=1)  # fmt: skip
    several = night(rate=20.0, chunks=10, batches=40, in_flight=2, gap=1.5, lag=0.0,
                    stalls=0.0, seed=1)  # fmt: skip
    assert share(alone.arrivals, 20.0) < 0.9
    assert share(several.arrivals, 20.0) >= 0.97


def test_share_is_the_slot_cycle_whatever_the_arrangement() -> None:
    """Bursts and even spacing at the same pace score the same; a span-based share would
    count a burst at each end of the run as extra budget."""
    bursts = [1000.0 + k * 1.02 + i * 1e-3 for k in range(10) for i in range(20)]
    even = [1000.0 + j * 1.02 / 20 for j in range(200)]
    assert share(bursts, 20.0) == pytest.approx(1 / 1.02)
    assert share(even, 20.0) == pytest.approx(1 / 1.02)
    assert (len(bursts) - 1) / ((max(bursts) - min(bursts)) * 20) > 1.0  # the span measure
