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
    "ClosedNight",
    "CycleRefused",
    "CycleStart",
    "close_open_nights",
    "create_cycle",
    "cycle_date_for",
    "dispatch_chunks",
    "due_night",
    "ensure_platform_ranges",
    "next_due_time",
]

#: A night beat missed is started late only within this long of its time; later, the
#: next night is closer than that one was.
CATCH_UP = dt.timedelta(hours=12)

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[ChunkSpec]], None]


class CycleRefused(ValueError):
    """A cycle that must not be started or retried; the message says why and what to do."""


@dataclass(frozen=True)
class ClosedNight:
    """A night closed as partial because the next one was due."""

    cycle_id: int
    date: dt.date
    missed_chunks: int
    missed_ids: int


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


def _last_due_time(now: dt.datetime, settings: Settings) -> dt.datetime:
    """The latest ``cycle_time`` (UTC) at or before ``now``."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    hour, minute = (int(x) for x in settings.cycle_time.split(":"))
    due = now.astimezone(dt.UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return due if due <= now else due - dt.timedelta(days=1)


def next_due_time(now: dt.datetime, settings: Settings) -> dt.datetime:
    """When the next night is due (the next ``cycle_time`` after ``now``)."""
    return _last_due_time(now, settings) + dt.timedelta(days=1)


def due_night(now: dt.datetime, settings: Settings) -> dt.date | None:
    """The date of the night due at the last ``cycle_time``, if that was within
    :data:`CATCH_UP` of ``now`` (beat may have been down at that time)."""
    due = _last_due_time(now, settings)
    if now - due > CATCH_UP:
        return None
    return cycle_date_for(due, settings)


def ensure_platform_ranges(session: Session, settings: Settings) -> None:
    """Seed ``platform_ranges`` from the initial ranges of the settings, once."""
    rows = [
        {"platform": p, "min_id": r.min_id, "max_id": r.max_id, "history": []}
        for p, r in ((Platform.xbox, settings.xbox_range), (Platform.ps, settings.ps_range))
    ]
    session.execute(pg_insert(PlatformRange).values(rows).on_conflict_do_nothing())


def close_open_nights(session: Session, day: dt.date) -> list[ClosedNight]:
    """Close every night before ``day`` still fetching, as partial; return what was closed.

    The rule for a night that is not done when the next one is due: what it fetched is
    what the API said while it ran; whatever it did not fetch by now would be read after
    the next night began (later data under its date). So its chunks not stored are
    marked ``missed`` (a result for them is refused later), the cycle records how many,
    and it moves on to ``diffing`` with what it has; those accounts have no snapshot
    that day and their play is counted, once, by the next night that reads them (the
    diff row says how many days it spans).
    """
    closed = []
    open_nights = session.execute(
        select(Cycle)
        .where(Cycle.date < day, Cycle.status == CycleStatus.fetching)
        .order_by(Cycle.date)
        .with_for_update()
    ).scalars()
    for cycle in open_nights:
        missed = session.execute(
            update(Chunk)
            .where(Chunk.cycle_id == cycle.id, Chunk.status != ChunkStatus.stored)
            .values(status=ChunkStatus.missed, error="night closed before it was stored")
            .returning(Chunk.last_id - Chunk.first_id + 1)
        ).scalars().all()  # fmt: skip
        night = ClosedNight(cycle.id, cycle.date, len(missed), int(sum(missed)))
        cycle.partial = True
        cycle.status = CycleStatus.diffing
        cycle.fetched_at = func.now()
        cycle.status_changed_at = func.now()
        cycle.notes = {
            **(cycle.notes or {}),
            "partial": {"missed_chunks": night.missed_chunks, "missed_ids": night.missed_ids,
                        "closed_for": day.isoformat()},
        }  # fmt: skip
        log.warning(
            "night of %s (cycle %s) closed as partial for %s: %d chunks (%d ids) missed",
            cycle.date, cycle.id, day, night.missed_chunks, night.missed_ids,
        )  # fmt: skip
        closed.append(night)
    return closed


def create_cycle(session: Session, settings: Settings, date: dt.date) -> CycleStart:
    """Record the cycle of ``date`` and its chunks, unless it exists (then change nothing).

    A date before the latest recorded night is refused (:class:`CycleRefused`): the API
    only tells today's counters, which are not that date's.
    """
    existing = session.execute(select(Cycle).where(Cycle.date == date)).scalar_one_or_none()
    if existing is not None:
        return CycleStart(existing.id, date, False, existing.chunks_total)
    latest = session.execute(select(func.max(Cycle.date))).scalar_one_or_none()
    if latest is not None and latest > date:
        raise CycleRefused(
            f"a cycle for {date} cannot start: the night of {latest} is already recorded, "
            "and what the API says now is not what it said on an earlier date"
        )
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
            # a new attempt starts its own progress clock
            progress_at=None,
            not_before=None,
        )
    )
    return len(chunks)
