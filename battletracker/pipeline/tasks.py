"""The pipeline's Celery tasks: thin wrappers that resolve dependencies and call a stage.

The volunteers' ``fetch_range`` lives in :mod:`.fetch_task`, apart from these.

Chain of one night (see design.md)::

    start_cycle ─► fetch_range (each chunk) ──link──► store_results (each chunk)
        ─(the last store)─► compute_diffs ─► grow_ranges ─► export_to_elastic
                                      └────► materialise_boards
    reap_stale every minute re-publishes what was lost.

Every task runs with ``acks_late`` and ``reject_on_worker_lost`` (from
:class:`~battletracker.app.PipelineTask`), so each may run twice: each stage is
idempotent by a status check under a row lock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import OperationalError

from ..app import PipelineTask, app, current_settings
from ..db import session_scope
from ..models import Chunk, ChunkStatus, CycleStatus
from ..nodes.intake import intake_result
from ..nodes.verify import dispatch_fields, dispatch_key
from . import metrics
from .coordinator import create_cycle, cycle_date_for, dispatch_chunks
from .diffs import compute_diffs as compute_diffs_stage
from .export import ExportError
from .fetch_task import fetch_range
from .queues import queue_depths
from .ranges import grow_ranges as grow_ranges_stage
from .reaper import reap
from .result import ChunkSpec
from .store import StoreOutcome

__all__ = [
    "chunk_failed",
    "compute_diffs",
    "export_to_elastic",
    "publish_chunks",
    "reap_stale",
    "start_cycle",
    "store_results",
]

log = logging.getLogger(__name__)

#: Database trouble is worth retrying (a restart, a failover); the message stays queued.
DB_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 5, "max_retries": 20}


def publish_chunks(specs: Sequence[ChunkSpec]) -> None:
    """Send one ``fetch_range`` per chunk, linked to ``store_results``, on one connection."""
    key = dispatch_key(current_settings().secret_key)  # issue 12: dispatch tokens
    with app.producer_or_acquire() as producer:
        for spec in specs:
            message = {**spec.to_message(), **dispatch_fields(
                key, spec.chunk_id, spec.cycle_id, spec.first_id, spec.last_id, spec.attempt)}
            fetch_range.apply_async((message,), link=store_results.s(), producer=producer)


# -- coordinator ---------------------------------------------------------------------------


@app.task(name="battletracker.start_cycle", base=PipelineTask, **DB_RETRY)
def start_cycle(date: str | None = None) -> dict[str, Any]:
    """Record the cycle of ``date`` (default: from now) and publish its chunks, once."""
    settings = current_settings()
    day = dt.date.fromisoformat(date) if date else cycle_date_for(dt.datetime.now(dt.UTC), settings)
    with session_scope(settings) as session:
        start = create_cycle(session, settings, day)
    if not start.created:
        log.info("cycle for %s exists (id %s): nothing to start", day, start.cycle_id)
        return {"cycle_id": start.cycle_id, "created": False, "published": 0}
    with session_scope(settings) as session:
        published = dispatch_chunks(
            session,
            publish_chunks,
            where=[Chunk.cycle_id == start.cycle_id, Chunk.status == ChunkStatus.pending],
        )
    return {"cycle_id": start.cycle_id, "created": True, "published": published}


# -- server side ---------------------------------------------------------------------------


@app.task(name="battletracker.store_results", base=PipelineTask, **DB_RETRY)
def store_results(result: object) -> str:
    """Authenticate, validate and store a fetch result; the store that completes a cycle
    sends the diffs. Unauthenticated results change nothing (see nodes/intake.py)."""
    settings = current_settings()
    with metrics.STORE_SECONDS.time():
        report = intake_result(settings, result)  # issue 12: node + dispatch checked first
    metrics.RESULTS.labels(report.outcome.value).inc()
    if report.outcome == StoreOutcome.stored:
        metrics.STORE_ROWS.inc(report.accounts)
    if report.cycle_complete:
        log.info("cycle %s: last chunk stored, computing diffs", report.cycle_id)
        compute_diffs.delay(report.cycle_id)
    return report.outcome.value


@app.task(name="battletracker.chunk_failed", base=PipelineTask, **DB_RETRY)
def chunk_failed(chunk: dict[str, Any], error: str, retryable: bool = True) -> None:
    """A fetcher gave up on a chunk: re-queue it (``rejected``) or fail it for the operator."""
    spec = ChunkSpec.from_message(chunk)
    with session_scope(current_settings()) as session:
        row = session.get(Chunk, spec.chunk_id, with_for_update=True)
        if row is None or row.status == ChunkStatus.stored:
            return
        row.status = ChunkStatus.rejected if retryable else ChunkStatus.failed
        row.error = error[:1000]


@app.task(name="battletracker.key_unusable", base=PipelineTask)
def key_unusable(node: str, key_hint: str, reason: str) -> None:
    """A node reports that its key cannot be used; the operator must act (logged loudly)."""
    log.critical("node %r: API key %s unusable (%s); it stopped fetching", node, key_hint, reason)


@app.task(name="battletracker.compute_diffs", base=PipelineTask, **DB_RETRY)
def compute_diffs(cycle_id: int) -> None:
    """Diff the cycle, then send range growth and the leaderboards."""
    with session_scope(current_settings()) as session:
        report = compute_diffs_stage(session, cycle_id)
    if report is None:
        return
    grow_ranges.delay(cycle_id)
    app.send_task("battletracker.materialise_boards", args=(cycle_id,))


@app.task(name="battletracker.grow_ranges", base=PipelineTask, **DB_RETRY)
def grow_ranges(cycle_id: int) -> None:
    settings = current_settings()
    with session_scope(settings) as session:
        grown = grow_ranges_stage(session, settings, cycle_id)
    if grown is not None:
        export_to_elastic.delay(cycle_id)


@app.task(
    name="battletracker.export_to_elastic",
    base=PipelineTask,
    autoretry_for=(OperationalError, ExportError),
    retry_backoff=30,
    max_retries=10,
)
def export_to_elastic(cycle_id: int) -> None:
    """Export the cycle's daily rows (when an Elasticsearch URL is set), then close it."""
    from .finish import finish_cycle

    finish_cycle(current_settings(), cycle_id)


@app.task(name="battletracker.reap_stale", base=PipelineTask, **DB_RETRY)
def reap_stale() -> dict[str, Any]:
    """Re-publish lost chunks and re-send stuck stages (beat runs this every minute)."""
    settings = current_settings()
    ready = _fetch_queue_ready()
    with session_scope(settings) as session:
        report = reap(session, settings, publish_chunks, fetch_queue_ready=ready)
    stage_tasks = {
        CycleStatus.diffing: compute_diffs,
        CycleStatus.growing: grow_ranges,
        CycleStatus.exporting: export_to_elastic,
    }
    for cycle_id, status in report.stages:
        stage_tasks[status].delay(cycle_id)
    return {"republished": report.republished, "failed": report.failed}


def _fetch_queue_ready() -> int | None:
    """Messages waiting in the fetch queue, or None if the broker cannot tell."""
    try:
        depths = queue_depths(current_settings().broker_url)
    except Exception as exc:  # the reaper must not die of a broker hiccup
        log.warning("cannot read the queue depths: %s", exc)
        return None
    for queue, (ready, _) in depths.items():
        metrics.QUEUE_MESSAGES.labels(queue).set(ready)
    return depths["fetch"][0]
