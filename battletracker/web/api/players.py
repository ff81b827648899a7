"""Players and activity: nickname search, ``/api/v1/players/{id}``, its history, activity."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...stats import queries
from ..deps import AsyncDb, DbSession
from ..search import search_players
from .params import API_PREFIX, AccountId, Days, NicknamePrefix, PlatformParam
from .schemas import ActivityOut, DayOut, EntryOut, PlayerMatchOut, PlayerOut, Problem

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["players"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown player"}}


@router.get("/players", response_model=list[PlayerMatchOut])
def search(
    session: DbSession,
    nickname: NicknamePrefix,
    platform: PlatformParam = "all",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[PlayerMatchOut]:
    """Players whose nickname starts with ``nickname``, in any case, ordered by nickname
    (then account id). Served by an index: a short prefix costs what a long one does."""
    return [PlayerMatchOut.of(m) for m in search_players(session, nickname,
                                                         platform=platform, limit=limit)]


@router.get("/players/{account_id}", response_model=PlayerOut, responses=NOT_FOUND)
async def player(db: AsyncDb, account_id: AccountId) -> PlayerOut:
    """Current counters, every stat handler's stats and all-time ranks."""
    stats, ranks = await db.player(account_id)
    out = PlayerOut.of(stats)
    out.ranks = {name: EntryOut.of(e) for name, e in ranks.items()}
    return out


@router.get("/players/{account_id}/history", response_model=list[DayOut],
            responses=NOT_FOUND)
def history(session: DbSession, account_id: AccountId, days: Days = 90) -> list[DayOut]:
    """The days the player's counters changed in the last ``days``, oldest first."""
    return [DayOut.of(d) for d in queries.player_history(session, account_id, days=days)]


@router.get("/activity", response_model=list[ActivityOut], tags=["activity"])
def activity(
    session: DbSession,
    days: Days = 90,
    platform: PlatformParam = "all",
) -> list[ActivityOut]:
    """Per date and platform: active accounts, battles, new accounts, average battles per
    active account, unique active accounts over 7/30/90 days. ``all`` lists both
    platforms' rows (they add up to the total)."""
    return [ActivityOut.of(r) for r in queries.activity(session, days=days, platform=platform)]
