"""Cycle progress and volunteer credit: ``/api/v1/cycles…``, ``/api/v1/credit``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from .. import progress
from ..deps import DbSession
from .params import API_PREFIX
from .schemas import CreditRow, CycleProgress, Problem

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["cycles"])


@router.get("/cycles/current", response_model=CycleProgress,
            responses={404: {"model": Problem, "description": "no cycle has run yet"}})
def current_cycle(session: DbSession) -> CycleProgress:
    """The latest night's progress: chunks done/total, accounts, rate and ETA."""
    cycle = progress.current_cycle(session)
    if cycle is None:
        raise HTTPException(404, "no cycle has run yet")
    return progress.progress_of(session, cycle)


@router.get("/cycles", response_model=list[CycleProgress])
def cycles(
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[CycleProgress]:
    """Recent cycles, newest first."""
    return [progress.progress_of(session, c)
            for c in progress.list_cycles(session, limit=limit, offset=offset)]


@router.get("/credit", response_model=list[CreditRow])
def credit(
    session: DbSession,
    days: Annotated[int | None, Query(ge=1, le=3660, description="window; all time if absent")]
    = None,
) -> list[CreditRow]:
    """Volunteer credit: stored chunks and accounts per node name (``chunks.node``).

    There is no nodes table yet, so a node is the name the pipeline recorded on a chunk.
    """
    return progress.credit(session, days=days)
