"""A node's lasting request streams: chunks from several threads share one client and limiter."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from battletracker.pipeline import keys
from battletracker.pipeline.result import ChunkSpec, FetchResult
from battletracker.settings import Settings, parse_keys
from battletracker.volunteer.identity import Identity
from battletracker.volunteer.lease import LeaseKeeper
from battletracker.wargaming.simulator import XBOX_MIN, Population, Simulator, serve

POPULATION = Population(seed=9, xbox_ids=3_000, ps_ids=0, new_per_day=0)


@pytest.fixture(autouse=True)
def fresh_keys() -> Iterator[None]:
    keys.forget_keys()
    yield
    keys.forget_keys()


def test_chunks_from_threads_share_one_client_and_one_limiter() -> None:
    sim = Simulator(POPULATION, keys={"k": 200.0}, strict_window=True)
    with serve(sim) as running:
        settings = Settings().replace(wg_api_url=running.url, wg_keys=parse_keys("k:200"))
        specs = [ChunkSpec(i + 1, 1, "xbox", XBOX_MIN + i * 1000, XBOX_MIN + i * 1000 + 999)
                 for i in range(3)]  # fmt: skip
        results: dict[int, FetchResult] = {}

        def fetch(spec: ChunkSpec) -> None:
            results[spec.chunk_id] = keys.fetch_on_node(spec, settings, "node-1")

        threads = [threading.Thread(target=fetch, args=(s,)) for s in specs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted(results) == [1, 2, 3]
    truth = {i for i, _ in POPULATION.truth(0)}
    for spec in specs:
        got = {row[0] for row in results[spec.chunk_id].rows}
        assert got == {i for i in truth if spec.first_id <= i <= spec.last_id}
    assert len(keys._CLIENTS) == 1 and len(keys._BUCKETS) == 1
    stats = sim.stats()
    assert stats["outcomes"] == {"ok": 30}
    assert stats["peak_per_second"]["k"] <= 200


def test_forget_keys_drops_the_lasting_clients() -> None:
    sim = Simulator(POPULATION, keys={"k": 100.0})
    with serve(sim) as running:
        settings = Settings().replace(wg_api_url=running.url, wg_keys=parse_keys("k:100"))
        keys.fetch_on_node(ChunkSpec(1, 1, "xbox", XBOX_MIN, XBOX_MIN + 99), settings)
        assert keys._CLIENTS
        keys.forget_keys()
    assert not keys._CLIENTS and not keys._BUCKETS


class _Leases:
    """A lease server in a script: the first lease, then every renewal."""

    def __init__(self, first: float, then: float) -> None:
        self.rates = [first, then]

    def lease(self, renew: int | None = None) -> dict[str, Any]:
        rps = self.rates[0] if renew is None else self.rates[1]
        return {"node_id": 1, "lease_id": 5, "broker_url": "amqp://x", "signing_key": "ab" * 32,
                "keys": [{"app_id": "pool", "rps": rps}], "expires_in": 60, "renew_in": 0.3,
                "required_version": "0"}  # fmt: skip


def test_a_renewal_that_lowers_the_share_slows_the_chunk_already_running(tmp_path: Path) -> None:
    """The chunk starts at the lease's 20 rps; the renewal 0.3 s later says 2 rps. Its last
    10 requests then go 2 a second (~5 s more): at the old rate the whole chunk of 30
    requests would take ~1.5 s (20 within half a second, then 10 a window later)."""
    sim = Simulator(POPULATION, keys={"pool": 20.0}, strict_window=True)
    keeper = LeaseKeeper(tmp_path, Identity("http://s", 1, "secret"), _Leases(20, 2))  # type: ignore[arg-type]
    with serve(sim) as running:
        keeper.start()
        keeper.follow(keys.follow_shares)
        try:
            settings = Settings().replace(wg_api_url=running.url, wg_keys=keeper.usable_keys())
            started = time.monotonic()
            result = keys.fetch_on_node(ChunkSpec(1, 1, "xbox", XBOX_MIN, XBOX_MIN + 2999),
                                        settings)  # fmt: skip
            took = time.monotonic() - started
        finally:
            keeper.stop()
    assert [k.rps for k in keeper.usable_keys()] == [2]
    assert len(result.rows) == sum(1 for _ in POPULATION.truth(0))
    assert took > 3.0, f"the chunk kept its starting rate ({took:.2f} s)"
    assert sim.stats()["outcomes"] == {"ok": 30}
