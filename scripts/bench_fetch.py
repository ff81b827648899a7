#!/usr/bin/env python
"""Benchmark how much of a key's rate budget ``fetch_chunk`` uses, over real HTTP.

    python scripts/bench_fetch.py                       # 20,000 ids at 20 and 10 rps
    python scripts/bench_fetch.py --ids 50000 --rates 20 --latency 0.1 0.3

For each rate, serves the API simulator on loopback with one key of that rate and
answers taking ``latency`` seconds (uniform), then fetches one chunk with the production
limiter (``TokenBucket``) and ``concurrency_for(rate)`` requests in flight, as a volunteer
node does. Prints requests/s, the share of the key's budget used (target >= 0.95, from
design.md "Rate limits are the real bottleneck") and the simulator's count of
REQUEST_LIMIT_EXCEEDED (target 0). Exits 1 if any target is missed or a chunk came back
incomplete.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass

from battletracker.pipeline.fetch import KeySlot, concurrency_for, fetch_chunk
from battletracker.pipeline.result import ChunkSpec, FetchResult
from battletracker.wargaming.client import WargamingClient
from battletracker.wargaming.ratelimit import TokenBucket
from battletracker.wargaming.simulator import XBOX_MIN, Faults, Population, Simulator, serve

__all__ = ["Measurement", "main", "measure"]

#: design.md: "keep a key at >= 95 % of its budget with zero limit errors".
BUDGET_TARGET = 0.95
KEY = "bench"


@dataclass(frozen=True)
class Measurement:
    """One fetch of one chunk at one key rate."""

    rate: float
    concurrency: int
    ids: int
    requests: int
    ok: int
    limit_errors: int
    other_errors: int
    #: Retries the fetcher made (includes failures the simulator never saw, e.g. resets).
    retries: int
    seconds: float
    complete: bool

    @property
    def achieved(self) -> float:
        """Requests the API accepted per second, over the whole fetch."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def share(self) -> float:
        """Share of the key's budget used (1.0: every token of the key spent)."""
        return self.achieved / self.rate

    def passed(self, target: float = BUDGET_TARGET) -> bool:
        return self.complete and self.limit_errors == 0 and self.share >= target


def measure(
    rate: float,
    ids: int,
    *,
    latency: tuple[float, float] = (0.1, 0.3),
    seed: int = 1,
    concurrency: int | None = None,
) -> Measurement:
    """Serve a fresh simulator with one key of ``rate`` rps and fetch ``ids`` ids through it."""
    population = Population(seed=seed, xbox_ids=ids, ps_ids=0, new_per_day=0)
    sim = Simulator(population, keys={KEY: rate}, faults=Faults(latency=latency, seed=seed))
    spec = ChunkSpec(
        chunk_id=1, cycle_id=1, platform="xbox", first_id=XBOX_MIN, last_id=XBOX_MIN + ids - 1
    )
    in_flight = concurrency or concurrency_for(rate)
    with serve(sim) as running:
        result = asyncio.run(_fetch(running.url, spec, rate, in_flight))
    stats = sim.stats()
    outcomes: dict[str, int] = stats["outcomes"]
    ok = outcomes.get("ok", 0)
    limit = outcomes.get("limit", 0)
    existing = sum(1 for i in range(spec.first_id, spec.last_id + 1) if population.exists(i, 0))
    return Measurement(
        rate=rate,
        concurrency=in_flight,
        ids=ids,
        requests=stats["requests"],
        ok=ok,
        limit_errors=limit,
        other_errors=stats["requests"] - ok - limit,
        retries=result.stats.get("retries", 0),
        seconds=result.seconds,
        complete=len(result.rows) == existing and result.empty == ids - existing,
    )


async def _fetch(url: str, spec: ChunkSpec, rate: float, concurrency: int) -> FetchResult:
    async with WargamingClient(url, KEY) as client:
        slot = KeySlot(client, TokenBucket(rate), concurrency=concurrency)
        return await fetch_chunk(spec, [slot], node="bench")


def report(rows: list[Measurement], target: float) -> str:
    """The measurements side by side, one column per rate."""
    labels = [
        ("key budget (rps)", lambda m: f"{m.rate:g}"),
        ("in flight", lambda m: str(m.concurrency)),
        ("ids / requests", lambda m: f"{m.ids} / {m.requests}"),
        ("seconds", lambda m: f"{m.seconds:.2f}"),
        ("achieved (rps)", lambda m: f"{m.achieved:.2f}"),
        (f"share of budget (>= {target:g})", lambda m: f"{m.share:.3f}"),
        ("REQUEST_LIMIT_EXCEEDED (0)", lambda m: str(m.limit_errors)),
        ("other API/transport errors", lambda m: str(m.other_errors)),
        ("client retries", lambda m: str(m.retries)),
        ("complete", lambda m: "yes" if m.complete else "NO"),
        ("verdict", lambda m: "ok" if m.passed(target) else "MISSED"),
    ]
    width = max(len(label) for label, _ in labels) + 2
    lines = []
    for label, cell in labels:
        lines.append(label.ljust(width) + "".join(cell(m).rjust(14) for m in rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ids", type=int, default=20_000, help="ids in the chunk (100/request)")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[20.0, 10.0],
        help="key budgets to measure, requests/s",
    )
    parser.add_argument(
        "--latency",
        type=float,
        nargs=2,
        default=(0.1, 0.3),
        metavar=("MIN", "MAX"),
        help="simulated answer time, seconds",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="requests in flight (default: concurrency_for(rate))",
    )
    parser.add_argument(
        "--target", type=float, default=BUDGET_TARGET, help="minimum share of the budget to pass"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    low, high = args.latency
    rows = []
    for rate in args.rates:
        print(
            f"fetching {args.ids} ids at {rate:g} rps, latency {low:g}-{high:g} s ...",
            file=sys.stderr,
            flush=True,
        )
        rows.append(
            measure(
                rate, args.ids, latency=(low, high), seed=args.seed, concurrency=args.concurrency
            )
        )
    print(report(rows, args.target))
    return 0 if all(m.passed(args.target) for m in rows) else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
