"""``account_info(on_send=...)``: called once per request, when it is on the wire."""

from __future__ import annotations

import asyncio
import time

from battletracker.wargaming.client import WargamingClient
from battletracker.wargaming.simulator import XBOX_MIN, Faults, Population, Simulator, serve

POPULATION = Population(seed=2, xbox_ids=300, ps_ids=0, new_per_day=0)


def test_on_send_fires_once_per_request_before_the_answer() -> None:
    sim = Simulator(POPULATION, keys={"k": 100.0}, faults=Faults(latency=(0.05, 0.05)))
    sent: list[float] = []
    answered: list[float] = []

    async def go(url: str) -> None:
        async with WargamingClient(url, "k") as client:
            for _ in range(3):
                await client.account_info([XBOX_MIN, XBOX_MIN + 1],
                                          on_send=lambda: sent.append(time.monotonic()))
                answered.append(time.monotonic())

    with serve(sim) as running:
        asyncio.run(go(running.url))
    assert len(sent) == 3
    # each request went out before its answer came back, at least the latency earlier
    assert all(a - s >= 0.045 for s, a in zip(sent, answered, strict=True))


def test_without_a_wire_on_send_is_never_called() -> None:
    sim = Simulator(POPULATION, keys={"k": 100.0})
    calls: list[int] = []

    async def go() -> None:
        async with WargamingClient("http://simulator.invalid/wotx/", "k",
                                   transport=sim.transport()) as client:
            await client.account_info([XBOX_MIN], on_send=lambda: calls.append(1))

    asyncio.run(go())
    assert calls == []


def test_before_send_holds_the_request_back_until_it_returns() -> None:
    """The pacer's gate at the wire: the API sees the request only after ``before_send``."""
    sim = Simulator(POPULATION, keys={"k": 100.0}, strict_window=True)
    order: list[str] = []
    released: list[float] = []

    async def hold() -> None:
        order.append("before")
        await asyncio.sleep(0.2)
        released.append(time.monotonic())

    async def go(url: str) -> None:
        async with WargamingClient(url, "k") as client:
            assert client.gates_at_wire
            await client.account_info([XBOX_MIN], before_send=hold,
                                      on_send=lambda: order.append("sent"))

    with serve(sim) as running:
        asyncio.run(go(running.url))
    assert order == ["before", "sent"]
    first, _ = sim.stats()["ok_span"]
    assert first >= released[0]  # counted by the API after the gate opened


def test_a_custom_transport_does_not_promise_the_gate() -> None:
    sim = Simulator(POPULATION, keys={"k": 100.0})
    client = WargamingClient("http://simulator.invalid/wotx/", "k", transport=sim.transport())
    assert not client.gates_at_wire
    asyncio.run(client.aclose())
