"""Progress of a cycle for people: chunks, accounts, rate and ETA (CLI and web)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Chunk, ChunkStatus, Cycle

__all__ = ["CycleProgress", "cycle_progress"]


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
    started_at: dt.datetime
    elapsed_seconds: float
    ids_per_second: float
    eta_seconds: float | None
    growth: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["date"] = self.date.isoformat()
        out["started_at"] = self.started_at.isoformat()
        return out


def cycle_progress(
    session: Session, *, date: dt.date | None = None, now: dt.datetime | None = None
) -> CycleProgress | None:
    """Progress of the cycle of ``date`` (default: the latest), or None if there is none."""
    query = select(Cycle)
    query = query.where(Cycle.date == date) if date else query.order_by(Cycle.date.desc())
    cycle = session.execute(query.limit(1)).scalar_one_or_none()
    if cycle is None:
        return None
    by_status = {
        s.value: n
        for s, n in session.execute(
            select(Chunk.status, func.count())
            .where(Chunk.cycle_id == cycle.id)
            .group_by(Chunk.status)
        ).all()
    }
    ids_done = int(
        session.execute(
            select(func.coalesce(func.sum(Chunk.last_id - Chunk.first_id + 1), 0)).where(
                Chunk.cycle_id == cycle.id, Chunk.status == ChunkStatus.stored
            )
        ).scalar_one()
    )
    now = now or dt.datetime.now(dt.UTC)
    end = cycle.fetched_at or now
    elapsed = max((end - cycle.started_at).total_seconds(), 1e-6)
    rate = ids_done / elapsed
    left = cycle.ids_total - ids_done
    eta = 0.0 if left <= 0 else (left / rate if rate > 0 else None)
    return CycleProgress(
        cycle_id=cycle.id,
        date=cycle.date,
        status=cycle.status.value,
        chunks_total=cycle.chunks_total,
        chunks_stored=cycle.chunks_stored,
        chunks_by_status=by_status,
        ids_total=cycle.ids_total,
        ids_done=int(ids_done),
        accounts=cycle.accounts,
        rejected_results=cycle.rejected_results,
        started_at=cycle.started_at,
        elapsed_seconds=round(elapsed, 1),
        ids_per_second=round(rate, 1),
        eta_seconds=None if eta is None else round(eta, 1),
        growth=list((cycle.notes or {}).get("growth", [])),
    )
