"""A key's rate budget over real HTTP: the production limiter uses it fully, never exceeds it.

A short version of ``battletracker bench keyrate``: the simulator counts the strict way
(a sliding one-second window) and the share is taken over the fetch window (first to
last accepted request). The rate a test machine can serve at all (the simulator runs in
this process, under coverage in CI) is measured in the same run with the same fetch and
no budget; the limited fetch must reach 90 % of the lower of the key's rate and that
reference. The speed target itself (>= 0.97 of 20 rps) lives in the benchmark.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

from battletracker.pipeline.fetch import KeySlot, concurrency_for, fetch_chunk
from battletracker.pipeline.result import ChunkSpec, FetchResult
from battletracker.wargaming.client import WargamingClient
from battletracker.wargaming.ratelimit import TokenBucket
from battletracker.wargaming.simulator import XBOX_MIN, Faults, Population, Simulator, serve

RATE = 40.0
REQUESTS = 100
POPULATION = Population(seed=4, xbox_ids=REQUESTS * 100, ps_ids=0, new_per_day=0)
SPEC = ChunkSpec(
    chunk_id=1,
    cycle_id=1,
    platform="xbox",
    first_id=XBOX_MIN,
    last_id=XBOX_MIN + REQUESTS * 100 - 1,
)


async def fetch(url: str, limiter: TokenBucket) -> FetchResult:
    async with WargamingClient(url, "server-key") as client:
        slot = KeySlot(client, limiter, concurrency=concurrency_for(RATE))
        return await fetch_chunk(SPEC, [slot])


def run_once(rate: float) -> tuple[float, Simulator, TokenBucket, FetchResult]:
    """Serve a fresh simulator with a key of ``rate``, fetch the chunk paced at ``rate``.

    Returns the accepted requests per second over the fetch window, and the parts.
    """
    sim = Simulator(
        POPULATION,
        keys={"server-key": rate},
        faults=Faults(latency=(0.05, 0.15), seed=4),
        strict_window=True,
    )
    limiter = TokenBucket(rate)
    with serve(sim) as running:
        result = asyncio.run(fetch(running.url, limiter))
    first, last = sim.stats()["ok_span"]
    return (REQUESTS - 1) / (last - first), sim, limiter, result


@pytest.mark.timeout(60)
def test_fetch_uses_the_keys_budget_without_limit_errors() -> None:
    achieved = []
    for _ in range(3):
        served, *_ = run_once(100 * RATE)  # the reference: what this machine serves
        rps, sim, limiter, result = run_once(RATE)
        assert sim.stats()["outcomes"] == {"ok": REQUESTS}  # in particular no "limit"
        assert limiter.slowdowns == 0 and limiter.rate == RATE
        assert len(result.rows) + result.empty == SPEC.size
        assert result.stats == {"requests": REQUESTS, "limit_errors": 0, "retries": 0}
        achieved.append((rps, served))
        if rps >= 0.9 * min(RATE, served):
            break
    # A busy machine can stall the event loop for a tenth of a second, which a 2.5 s run
    # cannot make up; a regression (too few in flight, pacing too slow) misses every time.
    figures = [f"{rps:.1f} of {min(RATE, served):.1f} rps" for rps, served in achieved]
    assert any(rps >= 0.9 * min(RATE, served) for rps, served in achieved), figures


def test_the_benchmark_script_runs_and_judges(monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path(__file__).parents[3] / "scripts" / "bench_fetch.py"
    spec = importlib.util.spec_from_file_location("bench_fetch", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    argv = ["--ids", "1000", "--rates", "200", "--latency", "0", "0.005"]
    assert bench.main([*argv, "--target", "0.05"]) == 0  # figures: the test above
    assert bench.main([*argv, "--target", "1.5"]) == 1  # an unreachable target fails
