"""Progress of a cycle for people: chunks, accounts, rates, ETA, nodes online.

The one place these numbers are computed: ``battletracker cycle status``, the demo's
progress bar, the web API, the dashboard and ``/metrics`` all read them from here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session

from ..models import BoardBuild, Chunk, ChunkStatus, Cycle, CycleStatus, PieceState

__all__ = ["RECENT", "CycleProgress", "cycle_progress", "progress_of"]

#: The window of the "recent" rate (for the ETA) and of "nodes online".
RECENT = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class CycleProgress:
    cycle_id: int
    date: dt.date
    status: str
    chunks_total: int
    chunks_stored: int
    chunks_by_status: dict[str, int]
    ids_total: int
    ids_done: int
    accounts: int
    rejected_results: int
    changed_players: int | None
    new_players: int | None
    started_at: dt.datetime
    fetched_at: dt.datetime | None
    finished_at: dt.datetime | None
    elapsed_seconds: float
    ids_per_second: float
    accounts_per_second: float
    #: Over the last :data:`RECENT` while fetching, else the cycle's average.
    chunks_per_minute: float
    #: Until every chunk is stored: 0 once fetched, None while there is no rate yet.
    eta_seconds: float | None
    #: Distinct node names that stored or were handed a chunk within :data:`RECENT`.
    nodes_online: int
    growth: list[dict[str, Any]]
    #: Rows set aside by the store (a rule broken) and accounts whose counters went down.
    set_aside: int = 0
    anomalies: int = 0
    #: First sightings not counted as play (the platform's first night, unreadable ids).
    baseline_accounts: int | None = None
    #: Closed before every chunk was stored: how many chunks and ids were missed.
    partial: dict[str, Any] | None = None
    #: The stage that failed for good and its error (status ``failed``).
    failed_stage: str | None = None
    error: str | None = None
    #: Pieces of the boards stage (windows' sums, boards, activity): done of total.
    boards_done: int = 0
    boards_total: int = 0
    boards_by_state: dict[str, int] | None = None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, dt.date | dt.datetime):
                out[key] = value.isoformat()
        return out


def progress_of(session: Session, cycle: Cycle, *, now: dt.datetime | None = None) -> CycleProgress:
    """The progress of ``cycle`` as of ``now``."""
    now = now or dt.datetime.now(dt.UTC)
    since = now - RECENT
    by_status = {
        ChunkStatus(s).value: int(n)
        for s, n in session.execute(
            select(Chunk.status, func.count())
            .where(Chunk.cycle_id == cycle.id)
            .group_by(Chunk.status)
        ).all()
    }
    pieces = {
        PieceState(s).value: int(n)
        for s, n in session.execute(
            select(BoardBuild.state, func.count())
            .where(BoardBuild.cycle_id == cycle.id)
            .group_by(BoardBuild.state)
        ).all()
    }
    stored = Chunk.status == ChunkStatus.stored
    ids_done, recent_chunks = session.execute(
        select(
            func.coalesce(func.sum(Chunk.last_id - Chunk.first_id + 1), 0),
            func.count().filter(Chunk.stored_at >= since),
        ).where(Chunk.cycle_id == cycle.id, stored)
    ).one()
    fetching = cycle.status == CycleStatus.fetching
    nodes = 0
    if fetching:
        nodes = (
            session.scalar(
                select(func.count(distinct(Chunk.node))).where(
                    Chunk.cycle_id == cycle.id,
                    Chunk.node.is_not(None),
                    or_(Chunk.stored_at >= since, Chunk.dispatched_at >= since),
                )
            )
            or 0
        )
    end = cycle.fetched_at or now
    elapsed = max((end - cycle.started_at).total_seconds(), 0.0)
    per_minute = cycle.chunks_stored / (elapsed / 60) if elapsed > 0 else 0.0
    if fetching and recent_chunks:
        per_minute = recent_chunks / (RECENT.total_seconds() / 60)
    remaining = max(cycle.chunks_total - cycle.chunks_stored, 0)
    eta: float | None = 0.0
    if fetching and remaining:
        eta = remaining / per_minute * 60 if per_minute > 0 else None
    return CycleProgress(
        cycle_id=cycle.id,
        date=cycle.date,
        status=CycleStatus(cycle.status).value,
        chunks_total=cycle.chunks_total,
        chunks_stored=cycle.chunks_stored,
        chunks_by_status=by_status,
        ids_total=cycle.ids_total,
        ids_done=int(ids_done),
        accounts=cycle.accounts,
        rejected_results=cycle.rejected_results,
        changed_players=cycle.changed_players,
        new_players=cycle.new_players,
        started_at=cycle.started_at,
        fetched_at=cycle.fetched_at,
        finished_at=cycle.finished_at,
        elapsed_seconds=round(elapsed, 3),
        ids_per_second=int(ids_done) / elapsed if elapsed > 0 else 0.0,
        accounts_per_second=cycle.accounts / elapsed if elapsed > 0 else 0.0,
        chunks_per_minute=per_minute,
        eta_seconds=eta,
        nodes_online=int(nodes),
        growth=list((cycle.notes or {}).get("growth", [])),
        set_aside=cycle.set_aside or 0,
        anomalies=cycle.anomalies or 0,
        baseline_accounts=cycle.baseline_accounts,
        partial=(cycle.notes or {}).get("partial") if cycle.partial else None,
        failed_stage=cycle.failed_stage,
        error=cycle.error,
        boards_done=pieces.get(PieceState.done.value, 0),
        boards_total=sum(pieces.values()),
        boards_by_state=pieces or None,
    )


def cycle_progress(
    session: Session, *, date: dt.date | None = None, now: dt.datetime | None = None
) -> CycleProgress | None:
    """Progress of the cycle of ``date`` (default: the latest), or None if there is none."""
    query = select(Cycle)
    query = query.where(Cycle.date == date) if date else query.order_by(Cycle.date.desc())
    cycle = session.execute(query.limit(1)).scalar_one_or_none()
    return None if cycle is None else progress_of(session, cycle, now=now)
