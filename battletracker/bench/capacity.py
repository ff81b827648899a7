"""Capacity (issue point 2): the pipeline alone, no rate limit, no latency, >= 20,000 ids/s.

A night of ``ids`` ids through real processes on this machine: one node fetch worker
(the lasting request stream, several chunks in threads, one key of 1,000 rps) and the
server's store worker, on RabbitMQ, against the simulator with a templated population
(so the stand-in costs a few microseconds an id and does not bound the run). ids/s is
measured from publish to the last chunk stored; a chart series of ids/s over the run
is kept, and both workers are sampled with py-spy to say what bounds the run.

The node keeps ``fetch_concurrency`` requests in flight for its one key (its operator's
``fetch_concurrency`` setting): with no latency to cover, 8 was measured fastest and
cheapest side by side with 4, 16 and 32 (the rate-derived default of a 1,000 rps key);
each further connection costs the node CPU on every request in httpcore's pool.

``store_concurrency`` (the store worker's processes) and ``prefetch`` (Celery's
``--prefetch-multiplier`` for the store worker and the node alike) are there to measure
the defaults by: each run reads the prefetch the broker actually gives the consumers,
so a setting that did not reach the workers fails the run instead of passing unseen.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..settings import Settings
from ..wargaming.simulator import Population, Simulator, TemplatePopulation, serve
from .profile import Sampler
from .report import Figure, Outcome
from .rig import pipeline_rig
from .services import prefetch_total

__all__ = ["run"]

KEY = "capacity"


def _series(
    samples: list[tuple[float, int, int]], chunk_size: int, step: float = 2.0
) -> list[list[float]]:
    """ids/s over windows of ``step`` seconds, from (t, chunks stored, accounts) samples;
    the last, shorter window too (a run shorter than a step is still one point)."""
    out: list[list[float]] = []
    last_t, last_c = 0.0, 0
    for i, (t, chunks, _) in enumerate(samples):
        if t > last_t and (t - last_t >= step or i == len(samples) - 1):
            out.append([round(t, 2), round((chunks - last_c) * chunk_size / (t - last_t))])
            last_t, last_c = t, chunks
    return out


def run(
    *,
    ids: int = 200_000,
    chunk_size: int = 10_000,
    chunks_in_flight: int = 3,
    store_concurrency: int = 1,
    fetch_concurrency: int = 8,
    prefetch: int = 1,
    workdir: Path | None = None,
    profile: bool = True,
    seed: int = 11,
) -> Outcome:
    outcome = Outcome(
        "capacity",
        {
            "ids": ids,
            "chunk_size": chunk_size,
            "chunks_in_flight": chunks_in_flight,
            "store_concurrency": store_concurrency,
            "fetch_concurrency": fetch_concurrency,
            "prefetch": prefetch,
        },
    )
    started = time.monotonic()
    half = ids // 2
    population: Population = TemplatePopulation(
        seed=seed, xbox_ids=half, ps_ids=ids - half, new_per_day=0
    )
    sim = Simulator(population, keys={KEY: 1000.0})
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bt_bench_capacity_"))
    with (
        serve(sim) as running,
        pipeline_rig(
            Settings(),
            api_url=running.url,
            xbox_ids=half,
            ps_ids=ids - half,
            chunk_size=chunk_size,
            workdir=workdir,
        ) as rig,
    ):
        multiplier = ("--prefetch-multiplier", str(prefetch))
        server = rig.server(concurrency=store_concurrency, queues="store", extra=multiplier)
        rig.server(queues="control")
        node = rig.node(
            chunks_in_flight,
            own_keys=f"{KEY}:1000",
            extra_env={"BATTLETRACKER_FETCH_CONCURRENCY": str(fetch_concurrency)},
            extra=multiplier,
        )
        node_before, store_before = node.usage(), server.usage()
        sim_before = time.process_time()
        published = rig.start_night()
        samplers = []
        if profile:
            span = max(10.0, min(60.0, ids / 10_000))
            samplers = [
                Sampler(node.proc.pid, span, workdir / "node.pyspy"),
                Sampler(server.proc.pid, span, workdir / "store.pyspy"),
            ]
        night = rig.wait_stored(published, timeout=ids / 1000 + 300)
        sim_cpu = time.process_time() - sim_before  # this process: mostly the simulator
        node_use, store_use = node.usage(), server.usage()
        node_cpu = node_use.cpu_seconds - node_before.cpu_seconds
        store_cpu = store_use.cpu_seconds - store_before.cpu_seconds
        expected = night.chunks  # every chunk stored once
        profiles = [s.finish() for s in samplers]
        # read once the night is stored: the management API's view lags by seconds
        held = {
            "store worker": (prefetch_total(rig.settings.broker_url, "store"), store_concurrency),
            "node": (prefetch_total(rig.settings.broker_url, "fetch"), chunks_in_flight),
        }
    seconds = night.stored_at - night.published_at
    rate = ids / seconds
    accounts_expected = sum(population.exists(i, 0) for i in rig_ids(population))
    outcome.add(
        Figure(
            "ids/s end to end (publish to last store)",
            rate,
            "ids/s",
            reference=accounts_expected / seconds,
            reference_label="accounts/s",
        )
    ).at_least(20_000)
    outcome.add(
        Figure(
            "accounts stored",
            night.accounts,
            reference=accounts_expected,
            reference_label="accounts in the population",
        )
    ).equals(accounts_expected)
    outcome.add(Figure("chunks stored", night.chunks, reference=expected, reference_label="chunks"))
    for name, (count, processes) in held.items():
        outcome.add(
            Figure(
                f"{name} prefetch at the broker (messages held)",
                count,
                reference=processes,
                reference_label="processes or threads",
            )
        ).equals(processes * prefetch)
    per_id = {"node": node_cpu, "store worker": store_cpu, "simulator": sim_cpu}
    for name, cpu in per_id.items():
        outcome.add(
            Figure(
                f"{name} CPU us per id",
                cpu * 1e6 / ids,
                "us",
                reference=cpu / seconds,
                reference_label="cores busy",
            )
        )
    total_us = sum(per_id.values()) * 1e6 / ids
    outcome.add(
        Figure(
            "ids/s 2 idle cores would allow (CPU bound, excl. DB and broker)",
            2e6 / total_us if total_us else 0.0,
            "ids/s",
        )
    )
    outcome.series = _series(night.samples, chunk_size)
    for name, text in zip(("node", "store worker"), profiles, strict=False):
        outcome.notes.append(f"py-spy {name}: {text}")
    outcome.seconds = time.monotonic() - started
    return outcome


def rig_ids(population: Population) -> list[int]:
    return [*population.id_range("xbox", 0), *population.id_range("ps", 0)]
