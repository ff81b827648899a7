#!/usr/bin/env python
"""Benchmark what a volunteer node costs its machine: CPU and memory per 100,000 ids.

    python scripts/bench_node.py                        # 100,000 ids at 20 rps, 200 ms
    python scripts/bench_node.py --ids 50000 --rate 10

Runs ``battletracker node run`` exactly as the service does (the supervisor and the fetch
worker it starts, at low priority) under a lease kept in a file, against the API
simulator over loopback HTTP with a strict one-second window per key and answers taking
200 ms +/- 50 %. Chunks of ``--chunk`` ids are published to a fresh RabbitMQ vhost the way
the coordinator publishes them; the results are drained from ``store`` (the node's cost
is what is measured, not the server's). Printed: CPU seconds of the node's processes per
100,000 ids, their share of one core over the fetch, the peak RSS of the largest process,
and requests refused by the key's limit. Targets (issue 14, point 7): under 10 % of one
core and under 150 MB. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kombu
from celery import Celery, signature

from battletracker.app import celery_options
from battletracker.bench.services import Usage, rabbit_vhost, usage_of_group
from battletracker.release import installed_version
from battletracker.settings import Settings
from battletracker.wargaming.simulator import XBOX_MIN, Faults, Population, Simulator, serve

__all__ = ["main"]

KEY = "benchnode"
CPU_SHARE_TARGET = 0.10
RSS_TARGET_MIB = 150.0


def _publish(broker: str, ids: int, chunk: int) -> int:
    app = Celery("bench-publisher", broker=broker)
    app.conf.update(celery_options(Settings(broker_url=broker)))
    with kombu.Connection(broker) as conn:
        for queue in app.conf.task_queues:
            queue(conn.default_channel).declare()
    n = 0
    for first in range(XBOX_MIN, XBOX_MIN + ids, chunk):
        n += 1
        message = {"chunk_id": n, "cycle_id": 1, "platform": "xbox", "first_id": first,
                   "last_id": min(first + chunk, XBOX_MIN + ids) - 1}  # fmt: skip
        app.send_task("battletracker.fetch_range", (message,),
                      link=signature("battletracker.store_results"))  # fmt: skip
    app.close()
    return n


def _drain(broker: str) -> int:
    """Fetch results taken from ``store`` (a node's notices about a chunk carry no rows)."""
    got = 0
    with kombu.Connection(broker) as conn:
        while (msg := conn.default_channel.basic_get("store", no_ack=True)) is not None:
            got += "rows" in json.loads(msg.body)[0][0]
    return got


def _usage(*pgids: int) -> Usage:
    parts = [usage_of_group(p) for p in pgids]
    return Usage(sum(p.cpu_seconds for p in parts), max(p.peak_rss_mib for p in parts),
                 sum(p.processes for p in parts))  # fmt: skip


def run(ids: int, rate: float, chunk: int) -> int:
    sim = Simulator(Population(seed=4, xbox_ids=ids, ps_ids=1, new_per_day=0),
                    keys={KEY: rate}, faults=Faults(latency=(0.1, 0.3), seed=4),
                    strict_window=True)  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="bt_bench_node_"))
    bt = Path(sys.executable).parent / "battletracker"
    with serve(sim) as api, rabbit_vhost("bt_bench_node") as broker:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        lease = work / "lease.json"
        lease.write_text(json.dumps({
            "node_id": "bench", "broker_url": broker, "keys": [{"app_id": KEY, "rps": rate}],
            "expires_at": expires.isoformat(), "required_version": installed_version(),
        }))  # fmt: skip
        env = {**os.environ, "BATTLETRACKER_WG_API_URL": api.url}
        with (work / "node-run.log").open("ab") as log:
            node = subprocess.Popen(
                [str(bt), "node", "run", "--dir", str(work / "node"), "--lease-file", str(lease)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            worker_log = work / "node" / "worker.log"
            deadline = time.monotonic() + 120
            while not (worker_log.exists() and "ready." in worker_log.read_text()):
                if time.monotonic() > deadline or node.poll() is not None:
                    raise SystemExit(f"the node did not start: see {work}")
                time.sleep(0.2)
            runner = json.loads((work / "node" / "runner.json").read_text())
            groups = (node.pid, int(runner["worker_pid"]))
            before = _usage(*groups)
            started = time.monotonic()
            chunks = _publish(broker, ids, chunk)
            stored = 0
            deadline = started + ids / 100 / rate * 3 + 120
            while stored < chunks:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {stored}/{chunks} chunks came back: see {work}")
                stored += _drain(broker)
                time.sleep(0.2)
            seconds = time.monotonic() - started
            after = _usage(*groups)
        finally:
            os.kill(node.pid, signal.SIGTERM)
            node.wait(60)
    cpu = after.cpu_seconds - before.cpu_seconds
    share = cpu / seconds
    figures = {
        "ids": ids, "rate_rps": rate, "latency_s": "0.1-0.3", "fetch_seconds": round(seconds, 1),
        "requests_per_second": round(ids / 100 / seconds, 2),
        "cpu_seconds_per_100k_ids": round(cpu * 100_000 / ids, 2),
        "cpu_share_of_one_core": round(share, 4),
        "peak_rss_mib_largest_process": round(after.peak_rss_mib, 1),
        "node_processes": after.processes, "api_outcomes": sim.stats()["outcomes"],
    }  # fmt: skip
    print(json.dumps(figures, indent=1))
    ok = share < CPU_SHARE_TARGET and after.peak_rss_mib < RSS_TARGET_MIB
    print(f"targets: CPU share < {CPU_SHARE_TARGET:.0%} of one core, peak RSS < "
          f"{RSS_TARGET_MIB:g} MiB: {'met' if ok else 'MISSED'}")  # fmt: skip
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--chunk", type=int, default=5_000)
    args = parser.parse_args(argv)
    return run(args.ids, args.rate, args.chunk)


if __name__ == "__main__":
    sys.exit(main())
