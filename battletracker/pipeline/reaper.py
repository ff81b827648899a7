"""Find work that fell through the cracks and hand it out again.

- chunks never published (the coordinator died between commit and publish),
- chunks whose result was rejected or whose fetch gave up,
- chunks dispatched long ago and still not stored, but only when the fetch queue has
  no ready message left (otherwise they are simply still waiting in line),
- cycles whose next stage was never sent or is stuck.

A chunk handed out ``max_attempts`` times is marked ``failed`` for the operator
(``battletracker cycle retry`` hands it out again).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from ..models import Chunk, ChunkStatus, Cycle, CycleStatus
from ..settings import Settings
from .coordinator import Publish, dispatch_chunks

__all__ = ["ReapReport", "reap"]

log = logging.getLogger(__name__)


@dataclass
class ReapReport:
    republished: int = 0
    failed: int = 0
    #: ``(cycle_id, status)`` whose stage task should be sent again.
    stages: list[tuple[int, CycleStatus]] = field(default_factory=list)


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
    stale = now - dt.timedelta(seconds=settings.stale_after_seconds)
    report = ReapReport()
    active = select(Cycle.id).where(Cycle.status == CycleStatus.fetching)

    # dispatched long ago and not stored: lost, unless still waiting in the queue
    overdue = and_(Chunk.status == ChunkStatus.dispatched, Chunk.dispatched_at < stale)
    gone = [Chunk.status == ChunkStatus.rejected]
    if fetch_queue_ready == 0:
        gone.append(overdue)
    report.failed = session.execute(  # type: ignore[attr-defined]
        update(Chunk)
        .where(
            Chunk.cycle_id.in_(active),
            Chunk.attempts >= settings.max_attempts,
            or_(*gone),
        )
        .values(status=ChunkStatus.failed, error=func.coalesce(Chunk.error, "attempts exhausted"))
    ).rowcount
    # pending chunks of a cycle recorded a while ago: the coordinator never published them
    recorded_earlier = select(Cycle.id).where(Cycle.started_at < now - dt.timedelta(seconds=60))
    never_sent = and_(Chunk.status == ChunkStatus.pending, Chunk.cycle_id.in_(recorded_earlier))
    report.republished = dispatch_chunks(
        session, publish, where=[Chunk.cycle_id.in_(active), or_(never_sent, *gone)]
    )

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
    # SKIP LOCKED: a stage that is running holds its cycle row; leave it alone
    stuck = session.execute(
        select(Cycle.id, Cycle.status)
        .where(
            Cycle.status.in_([CycleStatus.diffing, CycleStatus.growing, CycleStatus.exporting]),
            Cycle.status_changed_at <= stale,
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
    if report.republished or report.failed or report.stages:
        log.warning(
            "reaper: %d chunks republished, %d failed, stages resent %s",
            report.republished, report.failed, report.stages,
        )  # fmt: skip
    return report
