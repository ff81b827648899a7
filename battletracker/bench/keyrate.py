"""Key utilisation (issue point 1) and a fetch node's cost (point 7), in one real night.

The simulator enforces the strict reading of the limit (a sliding one-second window,
refusals counted) and answers in 200 ms +/- 50 %; one key of ``rate`` rps; the chunks go
through real fetch workers (threads: several chunks in progress, one shared limiter per
key) and a real store worker. Figures:

- share of the budget over the fetch window, >= 0.97: ``floor(rate)`` slots, each coming
  round at best once a second, so the share is one over the mean time between accepted
  requests ``i`` and ``i + floor(rate)`` (the simulator's ``slot_cycle``). Requests over
  the first-to-last span is shown beside it: the pacer lets a window's worth go within
  half a window after a stall, and such a burst at each end of the run would flatter
  that one by up to a window's worth;
- ``REQUEST_LIMIT_EXCEEDED`` (0) and the peak of requests in any one second (<= rate);
- the same end to end (publish to the last chunk stored), for reference;
- the node's CPU seconds and peak RSS per 100,000 ids: < 10 % of a core, < 150 MB.

The nodes are enrolled as volunteers are (invite, register, lease): the key sits in the
operator's pool and each node's lease hands it its share; with ``nodes=2`` the server
splits the key between the two leases and the run starts once both hold their half.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..settings import Settings
from ..wargaming.simulator import Faults, Population, Simulator, serve
from .report import Figure, Outcome
from .rig import fetch_app, pipeline_rig

__all__ = ["LATENCY", "run"]

#: 200 ms +/- 50 %
LATENCY = (0.1, 0.3)
KEY = "benchkey"


def run(
    *,
    ids: int = 60_000,
    chunk_size: int = 5_000,
    rate: float = 20.0,
    nodes: int = 1,
    chunks_in_flight: int = 3,
    latency: tuple[float, float] = LATENCY,
    workdir: Path | None = None,
    seed: int = 3,
    margin: float | None = None,
) -> Outcome:
    """One night of ``ids`` ids (half per platform) through ``nodes`` fetch workers."""
    outcome = Outcome(
        "keyrate" if nodes == 1 else f"keyrate_{nodes}_nodes",
        {
            "ids": ids,
            "chunk_size": chunk_size,
            "rate": rate,
            "nodes": nodes,
            "chunks_in_flight": chunks_in_flight,
            "latency": list(latency),
            "limit": "strict sliding 1 s window",
            "margin_s": margin if margin is not None else "default",
        },
    )
    started = time.monotonic()
    half = ids // 2
    population = Population(seed=seed, xbox_ids=half, ps_ids=ids - half, new_per_day=0)
    sim = Simulator(
        population, keys={KEY: rate}, faults=Faults(latency=latency, seed=seed), strict_window=True
    )
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bt_bench_keyrate_"))
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
        rig.server()
        rig.enrolment.add_key(KEY, rate)
        margin_env = {} if margin is None else {"BATTLETRACKER_FETCH_RATE_MARGIN": str(margin)}
        fetchers = [rig.node(chunks_in_flight, extra_env=margin_env) for _ in range(nodes)]
        rig.wait_shares(nodes, rate / nodes)
        before = rig.usage(fetchers)
        with rig.watching_leases() as leased:
            published = rig.start_night()
            night = rig.wait_stored(published, timeout=ids / 100 / rate * 3 + 120)
        after = rig.usage(fetchers)
        stats = sim.stats()
        expected = sum(1 for _ in population.truth(0))
    outcomes = stats["outcomes"]
    ok = outcomes.get("ok", 0)
    first, last = stats["ok_span"]
    window = last - first
    span_share = (ok - 1) / (window * rate) if window > 0 else 0.0
    cycle = stats["slot_cycle"].get(KEY)
    fetch_share = int(rate) / cycle / rate if cycle else 0.0
    e2e = night.stored_at - night.published_at
    outcome.add(
        Figure(
            "share of key budget over the fetch window",
            fetch_share,
            reference=ok / (e2e * rate),
            reference_label="end to end",
        )
    ).at_least(0.97)
    outcome.add(
        Figure(
            "accepted requests over first-to-last span / rate",
            span_share,
            reference=(cycle or 0.0) * 1000,
            reference_label="mean slot cycle, ms",
        )
    )
    outcome.add(
        Figure(
            "REQUEST_LIMIT_EXCEEDED",
            outcomes.get("limit", 0),
            reference=stats["requests"],
            reference_label="requests",
        )
    ).equals(0)
    outcome.add(
        Figure(
            "peak requests in one second",
            stats["peak_per_second"].get(KEY, 0),
            reference=rate,
            reference_label="key rate",
        )
    ).at_most(rate)
    outcome.add(
        Figure(
            "most rps leased out at once (the server's view)",
            leased.most_total,
            reference=rate,
            reference_label="key rate",
        )
    ).at_most(rate)
    outcome.add(Figure("chunks stored", night.chunks))
    outcome.add(
        Figure(
            "accounts stored",
            night.accounts,
            reference=expected,
            reference_label="accounts in the population",
        )
    ).equals(expected)
    cpu = after.cpu_seconds - before.cpu_seconds
    per_100k = cpu * 100_000 / ids
    core_share = cpu / e2e if e2e > 0 else 0.0
    outcome.add(
        Figure(
            "node CPU seconds per 100,000 ids",
            per_100k,
            "s",
            reference=100_000 / 100 / rate,
            reference_label="wall s per 100k ids",
        )
    )
    outcome.add(Figure("node CPU share of one core", core_share)).below(0.10)
    outcome.add(
        Figure(
            "node peak RSS (largest process)",
            after.peak_rss_mib,
            "MiB",
            reference=after.processes,
            reference_label="processes",
        )
    ).below(150)
    outcome.notes.append(
        f"fetch window {window:.1f} s for {ok} accepted requests; end to end {e2e:.1f} s "
        f"(publish to last chunk stored); node app: {fetch_app()}"
    )
    shares = ", ".join(f"{v:g}" for v in sorted(leased.shares_seen)) or "none"
    outcome.notes.append(f"shares leased out during the night: {shares} rps "
                         f"({leased.samples} samples)")  # fmt: skip
    if stats["limited_at"]:
        # when the key went over, against the lease renewals (every lease period / 3)
        when = ", ".join(f"{t - first:+.2f}" for t in stats["limited_at"][:10])
        outcome.notes.append(f"refused for the limit at {when} s from the first accepted request")
    if nodes > 1:
        outcome.notes.append(
            f"{nodes} enrolled nodes share the key under leases "
            f"({rate / nodes:g} rps each, from the server's rebalancing)"
        )
    outcome.seconds = time.monotonic() - started
    return outcome
