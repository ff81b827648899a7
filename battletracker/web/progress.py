"""Cycle progress, volunteer credit and the operator's views, read from cycles/chunks.

These are the web app's own queries: the pipeline writes ``cycles`` and ``chunks``, the
stats package owns boards and activity. There is no ``nodes`` table yet, so "nodes"
here are the distinct ``chunks.node`` names the pipeline recorded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session

from ..models import Chunk, ChunkStatus, Cycle, CycleStatus, PlatformRange
from .api.schemas import ChunkCounts, CreditRow, CycleProgress

__all__ = [
    "RECENT",
    "chunk_counts",
    "credit",
    "current_cycle",
    "list_cycles",
    "platform_ranges",
    "problem_chunks",
    "progress_of",
]

#: The window for "recent" rates and "nodes online".
RECENT = dt.timedelta(minutes=15)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def chunk_counts(session: Session, cycle_id: int) -> ChunkCounts:
    rows = session.execute(
        select(Chunk.status, func.count()).where(Chunk.cycle_id == cycle_id)
        .group_by(Chunk.status)
    ).all()
    return ChunkCounts(**{ChunkStatus(s).value: n for s, n in rows})


@dataclass(frozen=True)
class _Recent:
    chunks: int
    nodes: int
    accounts: int


def _recent(session: Session, cycle_id: int, since: dt.datetime) -> _Recent:
    stored = session.execute(
        select(func.count(), func.coalesce(func.sum(Chunk.accounts), 0))
        .where(Chunk.cycle_id == cycle_id, Chunk.status == ChunkStatus.stored,
               Chunk.stored_at >= since)
    ).one()
    nodes = session.scalar(
        select(func.count(distinct(Chunk.node)))
        .where(Chunk.cycle_id == cycle_id, Chunk.node.is_not(None),
               or_(Chunk.stored_at >= since, Chunk.dispatched_at >= since))
    )
    return _Recent(chunks=int(stored[0] or 0), nodes=int(nodes or 0),
                   accounts=int(stored[1] or 0))


def progress_of(session: Session, cycle: Cycle, *, now: dt.datetime | None = None
                ) -> CycleProgress:
    """The progress of ``cycle``: counts, rates and, while fetching, an ETA."""
    now = now or _now()
    counts = chunk_counts(session, cycle.id)
    recent = _recent(session, cycle.id, now - RECENT)
    fetching = cycle.status == CycleStatus.fetching
    end = cycle.fetched_at if cycle.fetched_at is not None else now
    elapsed = max((end - cycle.started_at).total_seconds(), 0.0)
    stored = cycle.chunks_stored
    accounts = cycle.accounts
    overall_cpm = stored / (elapsed / 60) if elapsed > 0 else 0.0
    recent_cpm = recent.chunks / (RECENT.total_seconds() / 60)
    cpm = recent_cpm if fetching and recent.chunks else overall_cpm
    remaining = max(cycle.chunks_total - stored, 0)
    eta_seconds: float | None = None
    if not fetching or not remaining:
        eta_seconds = 0.0
    elif cpm > 0:
        eta_seconds = remaining / cpm * 60
    return CycleProgress(
        id=cycle.id,
        date=cycle.date,
        status=CycleStatus(cycle.status).value,
        chunks_total=cycle.chunks_total,
        chunks_stored=stored,
        chunks=counts,
        fraction=stored / cycle.chunks_total if cycle.chunks_total else 0.0,
        ids_total=cycle.ids_total,
        accounts=accounts,
        rejected_results=cycle.rejected_results,
        changed_players=cycle.changed_players,
        new_players=cycle.new_players,
        started_at=cycle.started_at,
        fetched_at=cycle.fetched_at,
        finished_at=cycle.finished_at,
        elapsed_seconds=elapsed,
        accounts_per_second=accounts / elapsed if elapsed > 0 else 0.0,
        chunks_per_minute=cpm,
        eta_seconds=eta_seconds,
        eta=now + dt.timedelta(seconds=eta_seconds) if eta_seconds else None,
        nodes_online=recent.nodes if fetching else 0,
    )


def current_cycle(session: Session) -> Cycle | None:
    """The latest cycle (by date): the one running tonight, or the last one done."""
    return session.scalars(select(Cycle).order_by(Cycle.date.desc()).limit(1)).first()


def list_cycles(session: Session, *, limit: int = 30, offset: int = 0) -> list[Cycle]:
    return list(session.scalars(
        select(Cycle).order_by(Cycle.date.desc()).offset(offset).limit(limit)
    ))


def credit(session: Session, *, days: int | None = None, now: dt.datetime | None = None
           ) -> list[CreditRow]:
    """Stored chunks per node name, most first (ties by name); ``days`` limits the window."""
    ids = Chunk.last_id - Chunk.first_id + 1
    query = (
        select(
            Chunk.node,
            func.count().label("chunks"),
            func.coalesce(func.sum(Chunk.accounts), 0),
            func.coalesce(func.sum(ids), 0),
            func.count(distinct(Chunk.cycle_id)),
            func.coalesce(func.sum(Chunk.fetch_seconds), 0.0),
            func.min(Chunk.stored_at),
            func.max(Chunk.stored_at),
        )
        .where(Chunk.status == ChunkStatus.stored, Chunk.node.is_not(None))
        .group_by(Chunk.node)
        .order_by(func.count().desc(), Chunk.node)
    )
    if days is not None:
        query = query.where(Chunk.stored_at >= (now or _now()) - dt.timedelta(days=days))
    rows: list[Any] = list(session.execute(query))
    return [
        CreditRow(node=str(node), chunks=int(n), accounts=int(acc), ids=int(nids),
                  cycles=int(cyc), fetch_seconds=float(secs), first_stored_at=first,
                  last_stored_at=last)
        for node, n, acc, nids, cyc, secs, first, last in rows
    ]


def problem_chunks(session: Session, cycle_id: int, *, limit: int = 50) -> list[Chunk]:
    """Failed and rejected chunks of a cycle, and the most-attempted ones: the operator's."""
    return list(session.scalars(
        select(Chunk).where(Chunk.cycle_id == cycle_id,
                            or_(Chunk.status.in_([ChunkStatus.failed, ChunkStatus.rejected]),
                                Chunk.attempts > 1))
        .order_by(Chunk.status, Chunk.attempts.desc(), Chunk.id).limit(limit)
    ))


def platform_ranges(session: Session) -> list[dict[str, Any]]:
    return [
        {"platform": r.platform.value if hasattr(r.platform, "value") else r.platform,
         "min_id": r.min_id, "max_id": r.max_id, "history": list(r.history or []),
         "updated_at": r.updated_at}
        for r in session.scalars(select(PlatformRange).order_by(PlatformRange.platform))
    ]
