"""The server's Celery tasks: thin bodies that call a stage; the base task does the rest.

The volunteers' ``fetch_range`` lives in :mod:`.fetch_task`, apart from these.

Chain of one night (see design.md and :mod:`.stages`)::

    start_cycle ─► fetch_range (each chunk) ──link──► store_results (each chunk)
        ─(the last store)─► compute_diffs ─► grow_ranges ─► materialise_cycle
        ─► build_board_piece (each piece of the boards, see .boards; the last one sends)
        ─► export_to_elastic ─► done
    reap_stale every minute re-publishes lost chunks, re-sends stuck stages and lost
    board pieces;
    start_due_cycle every minute starts the night beat should have started, once.

Every task runs with ``acks_late`` and ``reject_on_worker_lost`` (from
:class:`~battletracker.app.PipelineTask`, which also owns the session, log context,
metrics, soft time limits and marking a failed stage), so each may run twice: each
stage is idempotent by a status check under a row lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import Any

from celery.exceptions import Reject
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from ..app import PipelineTask, app, current_settings
from ..db import engine_for
from ..models import Chunk, ChunkStatus, Cycle, CycleStatus
from ..nodes.intake import intake_result
from ..nodes.verify import dispatch_fields, dispatch_key
from ..release import MIN_VERSION_KEY, required_version
from . import metrics, retention
from .boards import enter_stage, fail_piece, run_piece
from .coordinator import (
    CycleRefused,
    close_open_nights,
    create_cycle,
    cycle_date_for,
    dispatch_chunks,
    due_night,
    next_due_time,
)
from .diffs import compute_diffs as compute_diffs_stage
from .diffs import next_night_to_diff
from .export import ExportError
from .fetch_task import fetch_range
from .queues import queue_depths
from .ranges import grow_ranges as grow_ranges_stage
from .reaper import reap
from .result import ChunkSpec
from .stages import STAGE_TASKS
from .store import StoreOutcome

__all__ = [
    "build_board_piece",
    "chunk_failed",
    "compact_snapshots",
    "compute_diffs",
    "export_to_elastic",
    "grow_ranges",
    "materialise_cycle",
    "publish_chunks",
    "reap_stale",
    "start_cycle",
    "start_due_cycle",
    "store_results",
]

log = logging.getLogger(__name__)

#: Database trouble is worth retrying (a restart, a failover); the message stays queued.
DB_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 5, "max_retries": 20}
#: A fetch message not taken by then is discarded by the worker: the night it belongs to
#: is closed when the next one is due. Never sooner than this after publishing.
MIN_FETCH_EXPIRY = dt.timedelta(hours=1)


def publish_chunks(specs: Sequence[ChunkSpec]) -> None:
    """Send one ``fetch_range`` per chunk, linked to ``store_results``, on one connection."""
    now = dt.datetime.now(dt.UTC)
    settings = current_settings()
    expires = max(next_due_time(now, settings), now + MIN_FETCH_EXPIRY)
    key = dispatch_key(settings.secret_key)  # issue 12: dispatch tokens
    # issue 14: a node older than this requeues the chunk untouched and upgrades itself
    wanted = {MIN_VERSION_KEY: required_version(settings)}
    with app.producer_or_acquire() as producer:
        for spec in specs:
            message = {**spec.to_message(), **wanted, **dispatch_fields(
                key, spec.chunk_id, spec.cycle_id, spec.first_id, spec.last_id, spec.attempt)}
            fetch_range.apply_async((message,), link=store_results.s(), producer=producer,
                                    expires=expires)  # fmt: skip


#: A stage's status is committed before its task is sent: a broker restart at that
#: moment must delay the hand-off, not lose it (the reaper is the second line).
STAGE_SEND_RETRY = {"max_retries": 60, "interval_start": 0.5, "interval_step": 0.5,
                    "interval_max": 2.0}  # fmt: skip


def _send_stage(status: CycleStatus, cycle_id: int) -> None:
    app.send_task(STAGE_TASKS[status], args=(cycle_id,), retry=True,
                  retry_policy=STAGE_SEND_RETRY)  # fmt: skip


def send_pieces(pieces: Sequence[tuple[int, int]]) -> None:
    """Send one ``build_board_piece`` per ``(cycle_id, piece_id)``, on one connection.

    Recorded as sent before: a message lost here is re-sent by the reaper."""
    if not pieces:
        return
    with app.producer_or_acquire() as producer:
        for cycle_id, piece_id in pieces:
            build_board_piece.apply_async((cycle_id, piece_id), producer=producer, retry=True,
                                          retry_policy=STAGE_SEND_RETRY)  # fmt: skip


# -- coordinator ---------------------------------------------------------------------------


@app.task(name="battletracker.start_cycle", base=PipelineTask, bind=True, **DB_RETRY)
def start_cycle(self: PipelineTask, date: str | None = None) -> dict[str, Any]:
    """Record the cycle of ``date`` (default: from now) and publish its chunks, once.

    Earlier nights still fetching are closed as partial first, and their diffs sent.
    """
    settings = self.settings
    day = dt.date.fromisoformat(date) if date else cycle_date_for(dt.datetime.now(dt.UTC), settings)
    try:
        with self.session() as session:
            closed = close_open_nights(session, day)
            start = create_cycle(session, settings, day)
    except CycleRefused as exc:
        log.error("%s", exc)
        return {"refused": str(exc)}
    for night in closed:
        _send_stage(CycleStatus.diffing, night.cycle_id)
    if not start.created:
        log.info("cycle for %s exists (id %s): nothing to start", day, start.cycle_id)
        return {"cycle_id": start.cycle_id, "created": False, "published": 0}
    with self.session() as session:
        published = dispatch_chunks(
            session,
            publish_chunks,
            where=[Chunk.cycle_id == start.cycle_id, Chunk.status == ChunkStatus.pending],
        )
    return {"cycle_id": start.cycle_id, "created": True, "published": published,
            "closed": [n.cycle_id for n in closed]}  # fmt: skip


@app.task(name="battletracker.start_due_cycle", base=PipelineTask, bind=True, **DB_RETRY)
def start_due_cycle(self: PipelineTask) -> dict[str, Any] | None:
    """Start the night that is due and not recorded yet (beat was down at its time), once."""
    day = due_night(dt.datetime.now(dt.UTC), self.settings)
    if day is None:
        return None
    with self.session() as session:
        latest = session.execute(select(func.max(Cycle.date))).scalar_one_or_none()
    if latest is not None and latest >= day:
        return None
    log.warning("the night of %s was not started at its time: starting it now", day)
    return start_cycle.run(day.isoformat())


# -- server side ---------------------------------------------------------------------------


@app.task(name="battletracker.store_results", base=PipelineTask, bind=True)
def store_results(self: PipelineTask, result: object) -> str:
    """Authenticate, validate and store a fetch result (or a node's progress or hold
    notice, see :mod:`.store`); the store that completes a cycle sends the diffs.
    Unauthenticated results change nothing (see nodes/intake.py).

    Database trouble hands the message back unchanged after a pause: a Celery retry
    would re-publish it with an ``eta``, which the store guard refuses (nodes/guard.py).
    """
    try:
        with metrics.STORE_SECONDS.time():
            report = intake_result(self.settings, result, publish_chunks)  # issue 12
    except OperationalError as exc:
        log.warning("store: database unavailable (%s); result handed back", type(exc).__name__)
        time.sleep(5)
        raise Reject("database unavailable", requeue=True) from exc
    metrics.RESULTS.labels(report.outcome.value).inc()
    if report.outcome == StoreOutcome.stored:
        metrics.STORE_ROWS.inc(report.accounts)
    if report.cycle_complete:
        log.info("cycle %s: last chunk stored, computing diffs", report.cycle_id)
        _send_stage(CycleStatus.diffing, report.cycle_id)  # type: ignore[arg-type]
    return report.outcome.value


@app.task(name="battletracker.chunk_failed", base=PipelineTask, bind=True, **DB_RETRY)
def chunk_failed(
    self: PipelineTask, chunk: dict[str, Any], error: str, retryable: bool = True
) -> None:
    """A fetcher gave up on a chunk: re-queue it (``rejected``) or fail it for the operator."""
    spec = ChunkSpec.from_message(chunk)
    with self.session() as session:
        row = session.get(Chunk, spec.chunk_id, with_for_update=True)
        if row is None or row.status in (ChunkStatus.stored, ChunkStatus.missed):
            return
        row.status = ChunkStatus.rejected if retryable else ChunkStatus.failed
        row.error = error[:1000]


@app.task(name="battletracker.key_unusable", base=PipelineTask)
def key_unusable(node: str, key_hint: str, reason: str) -> None:
    """A node reports that its key cannot be used; the operator must act (logged loudly)."""
    log.critical("node %r: API key %s unusable (%s); it stopped fetching", node, key_hint, reason)


# -- stages (see .stages): each one moves its cycle on and sends the next ------------------


@app.task(name="battletracker.compute_diffs", base=PipelineTask, bind=True,
          stage=CycleStatus.diffing.value, **DB_RETRY)  # fmt: skip
def compute_diffs(self: PipelineTask, cycle_id: int) -> None:
    """Diff the cycle (in date order), then send range growth and the next waiting night."""
    with self.session() as session:
        report = compute_diffs_stage(session, cycle_id)
    if report is not None:
        _send_stage(CycleStatus.growing, cycle_id)
    with self.session() as session:
        following = next_night_to_diff(session)
    if following is not None and following != cycle_id:
        _send_stage(CycleStatus.diffing, following)


@app.task(name="battletracker.grow_ranges", base=PipelineTask, bind=True,
          stage=CycleStatus.growing.value, **DB_RETRY)  # fmt: skip
def grow_ranges(self: PipelineTask, cycle_id: int) -> None:
    with self.session() as session:
        grown = grow_ranges_stage(session, self.settings, cycle_id)
    if grown is not None:
        _send_stage(CycleStatus.materialising, cycle_id)


@app.task(name="battletracker.materialise_cycle", base=PipelineTask, bind=True,
          stage=CycleStatus.materialising.value, **DB_RETRY)  # fmt: skip
def materialise_cycle(self: PipelineTask, cycle_id: int) -> None:
    """Record the boards' pieces and send those ready (see :mod:`.boards`)."""
    with self.session() as session:
        entry = enter_stage(session, cycle_id)
    if entry is None:
        return
    send_pieces(entry.send)
    if entry.finished:
        _send_stage(CycleStatus.exporting, cycle_id)


class BoardPieceTask(PipelineTask):
    """A piece that fails for good marks itself failed and names itself in the cycle's
    error (stage ``materialising``)."""

    abstract = True

    def failure_error(self, exc: BaseException, args: Any) -> str | None:
        error = f"{type(exc).__name__}: {exc}".strip()
        with self.session() as session:
            return fail_piece(session, args[0], args[1], error)


@app.task(
    name="battletracker.build_board_piece", base=BoardPieceTask, bind=True,
    stage=CycleStatus.materialising.value,
    # A restart of PostgreSQL, or the swap's lock_timeout: a retry builds the piece again.
    autoretry_for=(OperationalError,), retry_backoff=15, max_retries=10,
)  # fmt: skip
def build_board_piece(self: PipelineTask, cycle_id: int, piece_id: int) -> None:
    """One piece of the boards stage; the last one done sends the export."""
    outcome = run_piece(self.settings, piece_id)
    send_pieces(outcome.send)
    if outcome.finished:
        _send_stage(CycleStatus.exporting, cycle_id)


@app.task(
    name="battletracker.export_to_elastic",
    base=PipelineTask,
    bind=True,
    stage=CycleStatus.exporting.value,
    autoretry_for=(OperationalError, ExportError),
    retry_backoff=30,
    max_retries=10,
)
def export_to_elastic(self: PipelineTask, cycle_id: int) -> None:
    """Export the cycle's daily rows (when an Elasticsearch URL is set), then close it."""
    from .finish import finish_cycle

    finish_cycle(self.settings, cycle_id)


@app.task(name="battletracker.reap_stale", base=PipelineTask, bind=True, **DB_RETRY)
def reap_stale(self: PipelineTask) -> dict[str, Any]:
    """Re-publish lost chunks and re-send stuck stages (beat runs this every minute)."""
    ready = _fetch_queue_ready()
    with self.session() as session:
        report = reap(session, self.settings, publish_chunks, fetch_queue_ready=ready)
    for cycle_id, status in report.stages:
        _send_stage(status, cycle_id)
    send_pieces(report.pieces)
    return {"republished": report.republished, "failed": report.failed,
            "pieces": len(report.pieces)}  # fmt: skip


def _fetch_queue_ready() -> int | None:
    """Messages waiting in the fetch queue, or None if the broker cannot tell."""
    try:
        depths = queue_depths(reap_stale.settings.broker_url)
    except Exception as exc:  # the reaper must not die of a broker hiccup
        log.warning("cannot read the queue depths: %s", exc)
        return None
    for queue, (ready, _) in depths.items():
        metrics.QUEUE_MESSAGES.labels(queue).set(ready)
    return depths["fetch"][0]


@app.task(name="battletracker.compact_snapshots", base=PipelineTask, **DB_RETRY)
def compact_snapshots() -> list[str]:
    """The retention rule, daily by beat: months past the horizon keep their Sundays."""
    settings = current_settings()
    done = retention.compact_snapshots(
        engine_for(settings), dt.datetime.now(dt.UTC).date(), settings.snapshot_daily_days
    )
    return [c.month.isoformat() for c in done]
