"""Find work that fell through the cracks and hand it out again.

- chunks never published (the coordinator died between commit and publish),
- chunks whose result was rejected or whose fetch gave up,
- held chunks (METHOD_DISABLED) whose ``not_before`` has passed,
- chunks whose fetch stopped making progress: a fetch says when it starts
  (``progress_at``), and a started fetch that has not stored its chunk within the
  fetch's hard time limit is dead (the limit would have ended it); a chunk never
  started is waiting in the queue, and lost only when the fetch queue holds no ready
  message any more and it was dispatched long ago. Chunks being fetched when the
  queue first reads empty are therefore left alone;
- cycles whose next stage was never sent or is stuck (every recorded stage);
- pieces of the boards stage whose message was lost (:func:`.boards.lost_pieces`): a
  cycle in ``materialising`` with unfinished pieces is reaped piece by piece, not by
  sending the whole stage again.

A chunk handed out ``max_attempts`` times is marked ``failed`` for the operator
(``battletracker cycle retry`` hands it out again, with ``max_attempts`` more: attempts
are never reset, so a dispatch token of an earlier attempt stays stale).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, and_, func, or_, select, update
from sqlalchemy.orm import Session

from ..models import BoardBuild, Chunk, ChunkStatus, Cycle, CycleStatus, PieceState
from ..settings import Settings
from .boards import lost_pieces
from .coordinator import Publish, dispatch_chunks

__all__ = ["FETCH_HARD_LIMIT", "ReapReport", "reap"]

#: The fetch task's hard time limit (``pipeline.fetch_task``): a fetch that started
#: longer ago than this (plus a margin for the result to reach the store) is over.
FETCH_HARD_LIMIT = dt.timedelta(minutes=20)
_MARGIN = dt.timedelta(minutes=2)
#: Every recorded stage after fetching.
_STAGES = [CycleStatus.diffing, CycleStatus.growing, CycleStatus.materialising,
           CycleStatus.exporting]  # fmt: skip

log = logging.getLogger(__name__)


def _retries_of(cycle_id: Any) -> Any:
    """How many times ``cycle retry`` handed the night's failed chunks out (SQL)."""
    retries = func.coalesce(Cycle.notes["retries"].astext.cast(Integer), 0)
    return select(retries).where(Cycle.id == cycle_id).scalar_subquery()


@dataclass
class ReapReport:
    republished: int = 0
    failed: int = 0
    #: ``(cycle_id, status)`` whose stage task should be sent again.
    stages: list[tuple[int, CycleStatus]] = field(default_factory=list)
    #: ``(cycle_id, piece_id)`` of board pieces whose task should be sent again.
    pieces: list[tuple[int, int]] = field(default_factory=list)


def reap(
    session: Session,
    settings: Settings,
    publish: Publish,
    *,
    fetch_queue_ready: int | None,
    now: dt.datetime | None = None,
) -> ReapReport:
    """One pass; ``fetch_queue_ready`` is the fetch queue's ready count (None: unknown)."""
    # the database's clock, the one that stamped dispatched_at and status_changed_at
    now = now or session.execute(select(func.now())).scalar_one()
    stale_after = dt.timedelta(seconds=settings.stale_after_seconds)
    stale = now - stale_after
    report = ReapReport()
    active = select(Cycle.id).where(Cycle.status == CycleStatus.fetching)

    # a started fetch past its hard time limit is over; a chunk never started is waiting
    # in the queue, lost only when the queue holds nothing and it was dispatched long ago
    dispatched = Chunk.status == ChunkStatus.dispatched
    dead = and_(
        dispatched,
        Chunk.progress_at.is_not(None),
        Chunk.progress_at < now - max(FETCH_HARD_LIMIT + _MARGIN, stale_after),
    )
    unstarted = and_(dispatched, Chunk.progress_at.is_(None), Chunk.dispatched_at < stale)
    gone = [Chunk.status == ChunkStatus.rejected, dead]
    if fetch_queue_ready == 0:
        gone.append(unstarted)
    released = and_(Chunk.status == ChunkStatus.held, Chunk.not_before <= now)
    report.failed = session.execute(  # type: ignore[attr-defined]
        update(Chunk)
        .where(
            Chunk.cycle_id.in_(active),
            Chunk.attempts >= settings.max_attempts * (1 + _retries_of(Chunk.cycle_id)),
            or_(*gone),
        )
        .values(status=ChunkStatus.failed, error=func.coalesce(Chunk.error, "attempts exhausted"))
    ).rowcount
    # pending chunks of a cycle recorded a while ago: the coordinator never published them
    recorded_earlier = select(Cycle.id).where(Cycle.started_at < now - dt.timedelta(seconds=60))
    never_sent = and_(Chunk.status == ChunkStatus.pending, Chunk.cycle_id.in_(recorded_earlier))
    report.republished = dispatch_chunks(
        session, publish,
        where=[Chunk.cycle_id.in_(active), or_(never_sent, released, *gone)],
    )  # fmt: skip

    # a completed count whose status flip was lost, and stages stuck past the threshold
    session.execute(
        update(Cycle)
        .where(
            Cycle.status == CycleStatus.fetching,
            Cycle.chunks_total > 0,
            Cycle.chunks_stored >= Cycle.chunks_total,
        )
        .values(status=CycleStatus.diffing, fetched_at=func.now(), status_changed_at=stale)
    )
    # SKIP LOCKED: a stage that is running holds its cycle row; leave it alone. The
    # boards stage, once its pieces are recorded, is reaped piece by piece below.
    unfinished = select(BoardBuild.id).where(
        BoardBuild.cycle_id == Cycle.id, BoardBuild.state != PieceState.done
    )
    stuck = session.execute(
        select(Cycle.id, Cycle.status)
        .where(
            Cycle.status.in_(_STAGES),
            Cycle.status_changed_at <= stale,
            or_(Cycle.status != CycleStatus.materialising, ~unfinished.exists()),
        )
        .with_for_update(skip_locked=True)
    ).all()
    if stuck:
        session.execute(
            update(Cycle)
            .where(Cycle.id.in_([cid for cid, _ in stuck]))
            .values(status_changed_at=func.now())
        )
    report.stages = [(cid, status) for cid, status in stuck]
    report.pieces = lost_pieces(session, stale, settings.max_attempts)
    if report.republished or report.failed or report.stages or report.pieces:
        log.warning(
            "reaper: %d chunks republished, %d failed, stages resent %s, board pieces %s",
            report.republished, report.failed, report.stages, report.pieces,
        )  # fmt: skip
    return report
