"""Shared, bounded parameter types: anything outside them is a 422 before any query runs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query

__all__ = [
    "API_PREFIX",
    "AccountId",
    "BoardName",
    "Days",
    "Limit",
    "NicknamePrefix",
    "Offset",
    "PlatformParam",
    "Window",
]

#: Every API route's path starts with this. Routers carry it in their own prefix (not
#: one given to ``include_router``) so that a matched route's ``path`` is the full
#: template, which the metrics use as a label.
API_PREFIX = "/api/v1"
#: Account ids are positive BIGINTs.
MAX_ACCOUNT_ID = 2**63 - 1
#: Deeper offsets are an index scan too, but nobody pages a million rows by hand.
MAX_OFFSET = 10_000_000

Window = Annotated[Literal["day", "week", "month", "all"],
                   Query(description="day, week, month or all (time)")]
PlatformParam = Annotated[Literal["all", "xbox", "ps"],
                          Query(description="all (both together), xbox or ps")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
Limit = Annotated[int, Query(ge=1, le=200)]
Days = Annotated[int, Query(ge=1, le=3660, description="how many days back")]
AccountId = Annotated[int, Path(ge=1, le=MAX_ACCOUNT_ID)]
BoardName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", max_length=64)]
#: A nickname prefix: printable, no control characters, 1-64 characters.
NicknamePrefix = Annotated[str, Query(min_length=1, max_length=64,
                                      pattern=r"^[^\x00-\x1f\x7f]+$",
                                      description="the start of a nickname, any case")]
