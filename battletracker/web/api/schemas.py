"""The JSON shapes of the API (pydantic models: they are also the OpenAPI schema)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ActivityOut",
    "BoardOut",
    "ChunkCounts",
    "CreditRow",
    "CycleProgress",
    "DayOut",
    "EntryOut",
    "Health",
    "PageOut",
    "PlayerMatchOut",
    "PlayerOut",
    "Problem",
]


class _FromStats(BaseModel):
    """Built from the stats package's dataclasses (``Model.of(obj)``)."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, obj: Any) -> Self:
        return cls.model_validate(obj)


class BoardOut(_FromStats):
    """A leaderboard: its key, title, description and the unit and format of scores."""

    name: str
    title: str
    description: str
    unit: str
    format: str = Field(description="a Python str.format pattern for one score")
    min_battles: int
    min_battles_by_window: dict[str, int] = Field(
        description="battles needed in each window to be ranked")
    windows: list[str]
    platforms: list[str]


class EntryOut(_FromStats):
    """One ranked account; ``rank`` is within the platform asked for."""

    rank: int
    account_id: int
    nickname: str | None
    platform: str
    score: float
    battles: int


class PageOut(_FromStats):
    """Ranks ``offset+1 .. offset+len(entries)`` of ``total``; ``as_of`` is the cycle date
    the board was built for (null: never built)."""

    board: str
    window: str
    platform: str
    entries: list[EntryOut]
    total: int
    offset: int
    limit: int
    as_of: dt.date | None


class PlayerOut(_FromStats):
    """A player's current counters and each stat handler's stats."""

    account_id: int
    nickname: str
    platform: str
    created_at: int | None = Field(description="Unix seconds, as the API reports it")
    last_battle_time: int | None
    last_seen: dt.date
    counters: dict[str, int]
    stats: dict[str, dict[str, float | None]]
    ranks: dict[str, EntryOut] = Field(
        default_factory=dict, description="all-time rank over both platforms, per board")


class PlayerMatchOut(_FromStats):
    """A player found by nickname."""

    account_id: int
    nickname: str
    platform: str
    last_seen: dt.date = Field(description="the night the player was last seen playing")
    battles: int


class DayOut(_FromStats):
    """A day on which the player's counters changed: that day's diffs and the total."""

    date: dt.date
    battles: int
    diffs: dict[str, int]
    total_battles: int | None


class ActivityOut(_FromStats):
    """A platform's activity on one date."""

    date: dt.date
    platform: str
    active_accounts: int
    battles: int
    new_accounts: int
    avg_battles_per_active: float | None
    unique_7d: int
    unique_30d: int
    unique_90d: int


class Problem(BaseModel):
    """An error answer: ``detail`` says what was wrong."""

    detail: Any


class ChunkCounts(BaseModel):
    """Chunks of a cycle by status."""

    pending: int = 0
    dispatched: int = 0
    stored: int = 0
    rejected: int = 0
    failed: int = 0


class CycleProgress(BaseModel):
    """One night's progress, with rates and an estimate of when fetching ends."""

    id: int
    date: dt.date
    status: str
    chunks_total: int
    chunks_stored: int
    chunks: ChunkCounts
    #: ``chunks_stored / chunks_total`` (0..1).
    fraction: float
    ids_total: int
    accounts: int
    rejected_results: int
    changed_players: int | None
    new_players: int | None
    started_at: dt.datetime
    fetched_at: dt.datetime | None
    finished_at: dt.datetime | None
    elapsed_seconds: float
    accounts_per_second: float = Field(description="average since the cycle started")
    chunks_per_minute: float = Field(
        description="over the last 15 minutes while fetching, else the cycle's average"
    )
    eta_seconds: float | None = Field(
        description="until every chunk is stored; null when done or no rate yet"
    )
    eta: dt.datetime | None
    nodes_online: int = Field(
        description="distinct chunks.node names active in the last 15 minutes "
        "(there is no nodes table yet)"
    )


class CreditRow(BaseModel):
    """What one volunteer node (a ``chunks.node`` name) has contributed."""

    node: str
    chunks: int
    accounts: int
    ids: int
    cycles: int
    fetch_seconds: float
    first_stored_at: dt.datetime | None
    last_stored_at: dt.datetime | None


class Health(BaseModel):
    status: str
    database: str
