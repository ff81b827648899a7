"""Prometheus metrics of the pipeline's worker processes, served on their own port.

Each worker process (a fetch worker runs one) serves ``/metrics`` on
``worker_metrics_port`` + its pool index when the setting is non-zero, so a volunteer's
Prometheus, or the operator's, can scrape requests by outcome, limit errors, accounts
fetched, chunk latency and store throughput straight from the process that did the work.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_process_init
from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "ACCOUNTS_FETCHED",
    "API_REQUESTS",
    "CHUNK_SECONDS",
    "CYCLE_CHUNKS",
    "QUEUE_MESSAGES",
    "RESULTS",
    "STAGE_FAILURES",
    "STORE_ROWS",
    "STORE_SECONDS",
    "TASK_RUNS",
    "TASK_SECONDS",
    "record_fetch",
    "serve_worker_metrics",
]

log = logging.getLogger(__name__)

API_REQUESTS = Counter(
    "battletracker_api_requests", "API requests sent, by outcome", ["outcome"]
)
ACCOUNTS_FETCHED = Counter("battletracker_accounts_fetched", "Accounts found by fetches")
IDS_FETCHED = Counter("battletracker_ids_fetched", "Account ids asked for by fetches")
CHUNK_SECONDS = Histogram(
    "battletracker_chunk_fetch_seconds", "Time to fetch one chunk",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200),
)  # fmt: skip
STORE_ROWS = Counter("battletracker_store_rows", "Account rows COPYed into staging")
STORE_SECONDS = Histogram("battletracker_store_seconds", "Time to validate and store a result")
RESULTS = Counter("battletracker_results", "Fetch results by store outcome", ["outcome"])
CYCLE_CHUNKS = Gauge(
    "battletracker_cycle_chunks", "Chunks of the running cycle, as of the last store", ["state"]
)
TASK_RUNS = Counter(
    "battletracker_task_runs", "Pipeline task runs by task and outcome "
    "(ok, retry, error, soft_time_limit)", ["task", "outcome"],
)  # fmt: skip
TASK_SECONDS = Histogram(
    "battletracker_task_seconds", "Seconds one pipeline task run took", ["task"],
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800),
)  # fmt: skip
STAGE_FAILURES = Counter(
    "battletracker_stage_failures", "Cycle stages that failed for good (cycle marked failed)",
    ["stage"],
)  # fmt: skip
QUEUE_MESSAGES = Gauge(
    "battletracker_queue_messages", "Messages ready in a queue, as of the last reaper run",
    ["queue"],
)  # fmt: skip


def record_fetch(result: dict[str, Any]) -> None:
    """Count one finished fetch from the stats it carries to the server."""
    requests = int(result.get("requests", 0))
    limit = int(result.get("limit_errors", 0))
    retried = int(result.get("retries", 0))
    API_REQUESTS.labels("ok").inc(max(0, requests - limit - retried))
    API_REQUESTS.labels("limit_exceeded").inc(limit)
    API_REQUESTS.labels("retried_error").inc(retried)
    ACCOUNTS_FETCHED.inc(len(result.get("rows", ())))
    IDS_FETCHED.inc(int(result["last_id"]) - int(result["first_id"]) + 1)
    CHUNK_SECONDS.observe(float(result.get("seconds", 0.0)))


def serve_worker_metrics(port: int, index: int) -> int | None:
    """Serve ``/metrics`` on ``port + index``; returns the port, None if disabled or busy."""
    if port <= 0:
        return None
    try:
        start_http_server(port + index, addr="0.0.0.0")
    except OSError as exc:  # a recycled process whose predecessor still holds the port
        log.warning("worker metrics not served on port %d: %s", port + index, exc)
        return None
    log.info("worker metrics on :%d/metrics", port + index)
    return port + index


@worker_process_init.connect
def _serve_metrics(**_: object) -> None:
    """Each pool process of any worker (node or server) serves its own metrics."""
    from billiard.process import current_process

    from ..app import current_settings

    index = getattr(current_process(), "index", 0) or 0
    serve_worker_metrics(current_settings().worker_metrics_port, index)
