"""Leaderboards: ``/api/v1/boards…`` (top pages, a player's rank, the players around)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...stats import queries
from ..deps import AsyncDb
from .params import API_PREFIX, AccountId, BoardName, Limit, Offset, PlatformParam, Window
from .schemas import BoardOut, EntryOut, PageOut, Problem

__all__ = ["router"]

router = APIRouter(prefix=f"{API_PREFIX}/boards", tags=["leaderboards"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown board (or player)"}}


@router.get("", response_model=list[BoardOut])
def boards() -> list[BoardOut]:
    """Every leaderboard (built-in and plugins), in display order."""
    return [BoardOut.of(b) for b in queries.list_boards()]


@router.get("/{board}", response_model=PageOut, responses=NOT_FOUND)
async def top(
    db: AsyncDb,
    board: BoardName,
    window: Window = "all",
    platform: PlatformParam = "all",
    offset: Offset = 0,
    limit: Limit = 50,
) -> PageOut:
    """One page of a board: ranks ``offset+1 .. offset+limit``, best first."""
    return PageOut.of(await db.top(board, window, platform, offset=offset, limit=limit))


@router.get("/{board}/rank/{account_id}", response_model=EntryOut, responses=NOT_FOUND)
async def rank(
    db: AsyncDb,
    board: BoardName,
    account_id: AccountId,
    window: Window = "all",
    platform: PlatformParam = "all",
) -> EntryOut:
    """A player's rank and score on a board; 404 when the player is not ranked there."""
    return EntryOut.of(await db.rank_of(board, window, platform, account_id))


@router.get("/{board}/around/{account_id}", response_model=list[EntryOut],
            responses=NOT_FOUND)
async def around(
    db: AsyncDb,
    board: BoardName,
    account_id: AccountId,
    window: Window = "all",
    platform: PlatformParam = "all",
    n: Annotated[int, Query(ge=0, le=50, description="players on each side")] = 5,
) -> list[EntryOut]:
    """The player and up to ``n`` players ranked above and below, in rank order."""
    return [EntryOut.of(e) for e in await db.around(board, window, platform, account_id, n=n)]
