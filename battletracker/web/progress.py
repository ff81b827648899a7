"""Cycle progress, volunteer credit and the operator's views, read from cycles/chunks.

These are the web app's own queries: the pipeline writes ``cycles`` and ``chunks``, the
stats package owns boards and activity. There is no ``nodes`` table yet, so "nodes"
here are the distinct ``chunks.node`` names the pipeline recorded.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session

from ..models import Chunk, ChunkStatus, Cycle, PlatformRange
from ..pipeline import status
from .api.schemas import ChunkCounts, CreditRow, CycleProgress

__all__ = [
    "RECENT",
    "credit",
    "current_cycle",
    "list_cycles",
    "platform_ranges",
    "problem_chunks",
    "progress_of",
]

RECENT = status.RECENT


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def progress_of(session: Session, cycle: Cycle, *, now: dt.datetime | None = None
                ) -> CycleProgress:
    """The progress of ``cycle`` (computed in :mod:`battletracker.pipeline.status`)."""
    now = now or _now()
    p = status.progress_of(session, cycle, now=now)
    return CycleProgress(
        id=p.cycle_id,
        date=p.date,
        status=p.status,
        chunks_total=p.chunks_total,
        chunks_stored=p.chunks_stored,
        chunks=ChunkCounts(**p.chunks_by_status),
        fraction=p.chunks_stored / p.chunks_total if p.chunks_total else 0.0,
        ids_total=p.ids_total,
        accounts=p.accounts,
        rejected_results=p.rejected_results,
        changed_players=p.changed_players,
        new_players=p.new_players,
        started_at=p.started_at,
        fetched_at=p.fetched_at,
        finished_at=p.finished_at,
        elapsed_seconds=p.elapsed_seconds,
        accounts_per_second=p.accounts_per_second,
        chunks_per_minute=p.chunks_per_minute,
        eta_seconds=p.eta_seconds,
        eta=now + dt.timedelta(seconds=p.eta_seconds) if p.eta_seconds else None,
        nodes_online=p.nodes_online,
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
