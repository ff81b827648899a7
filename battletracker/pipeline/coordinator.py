"""Start a cycle: record it and its chunks once per date, then hand chunks out.

Recording and publishing are two transactions on purpose: chunks are published only
after the rows that describe them are committed, and a chunk is marked dispatched in the
same transaction that selected it (``FOR UPDATE SKIP LOCKED``), so a second coordinator
or reaper running at the same moment never publishes the same chunk twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from ..models import Chunk, ChunkStatus, Cycle, CycleStatus, Platform, PlatformRange
from ..settings import Settings
from .chunking import split_range
from .partitions import ensure_cycle_staging
from .result import ChunkSpec

__all__ = [
    "CycleStart",
    "create_cycle",
    "cycle_date_for",
    "dispatch_chunks",
    "ensure_platform_ranges",
]

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[ChunkSpec]], None]


@dataclass(frozen=True)
class CycleStart:
    cycle_id: int
    date: dt.date
    created: bool
    chunks: int


def cycle_date_for(now: dt.datetime, settings: Settings) -> dt.date:
    """The date a cycle started at ``now`` records: the day the battles were played."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return (now.astimezone(dt.UTC) - dt.timedelta(hours=settings.date_lag_hours)).date()


def ensure_platform_ranges(session: Session, settings: Settings) -> None:
    """Seed ``platform_ranges`` from the initial ranges of the settings, once."""
    rows = [
        {"platform": p, "min_id": r.min_id, "max_id": r.max_id, "history": []}
        for p, r in ((Platform.xbox, settings.xbox_range), (Platform.ps, settings.ps_range))
    ]
    session.execute(pg_insert(PlatformRange).values(rows).on_conflict_do_nothing())


def create_cycle(session: Session, settings: Settings, date: dt.date) -> CycleStart:
    """Record the cycle of ``date`` and its chunks, unless it exists (then change nothing)."""
    ensure_platform_ranges(session, settings)
    cycle_id = session.execute(
        pg_insert(Cycle)
        .values(date=date, status=CycleStatus.fetching, notes={})
        .on_conflict_do_nothing(index_elements=["date"])
        .returning(Cycle.id)
    ).scalar_one_or_none()
    if cycle_id is None:
        existing = session.execute(select(Cycle).where(Cycle.date == date)).scalar_one()
        return CycleStart(existing.id, date, False, existing.chunks_total)
    ranges = session.execute(select(PlatformRange).order_by(PlatformRange.platform)).scalars()
    rows: list[dict[str, Any]] = []
    for r in ranges:
        for first, last in split_range(r.min_id, r.max_id, settings.chunk_size):
            rows.append(
                {
                    "cycle_id": cycle_id,
                    "platform": r.platform,
                    "first_id": first,
                    "last_id": last,
                    "status": ChunkStatus.pending,
                    "attempts": 0,
                }
            )
    if rows:
        session.execute(insert(Chunk), rows)
    ids_total = sum(int(r["last_id"]) - int(r["first_id"]) + 1 for r in rows)
    session.execute(
        update(Cycle)
        .where(Cycle.id == cycle_id)
        .values(chunks_total=len(rows), ids_total=ids_total)
    )
    ensure_cycle_staging(session.connection(), cycle_id)
    log.info("cycle %s for %s: %d chunks, %d ids", cycle_id, date, len(rows), ids_total)
    return CycleStart(cycle_id, date, True, len(rows))


def dispatch_chunks(
    session: Session,
    publish: Publish,
    *,
    where: Sequence[ColumnElement[bool]],
    limit: int = 100_000,
) -> int:
    """Publish the chunks matching ``where`` and mark them dispatched; returns the count.

    Rows are locked with ``SKIP LOCKED``: a concurrent dispatcher skips them instead of
    publishing them a second time. Publishing happens before the commit; if the commit
    fails the chunks stay undispatched and are published again later, which the
    idempotent store absorbs.
    """
    chunks = (
        session.execute(
            select(Chunk)
            .where(*where)
            .order_by(Chunk.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    if not chunks:
        return 0
    specs = [ChunkSpec(c.id, c.cycle_id, c.platform.value, c.first_id, c.last_id,
                       attempt=c.attempts + 1) for c in chunks]  # the attempt it is sent in
    publish(specs)
    session.execute(
        update(Chunk)
        .where(Chunk.id.in_([c.id for c in chunks]))
        .values(
            status=ChunkStatus.dispatched,
            dispatched_at=func.now(),
            attempts=Chunk.attempts + 1,
        )
    )
    return len(chunks)
