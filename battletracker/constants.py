"""Facts of the game's data shared by every side: the counters and the platform line.

A leaf module (standard library only): a volunteer's fetch worker imports it without
pulling in the database layer that :mod:`battletracker.models` needs.
"""

from __future__ import annotations

import enum

__all__ = ["COUNTERS", "PS_THRESHOLD", "Platform", "platform_of", "platform_sql"]

#: The ``statistics.all`` counters, under their API names, in a fixed order that the
#: fetch result, the staging COPY and every set-based statement share.
COUNTERS: tuple[str, ...] = (
    "battles",
    "wins",
    "losses",
    "draws",
    "spotted",
    "frags",
    "damage_dealt",
    "damage_received",
    "dropped_capture_points",
    "capture_points",
    "xp",
    "hits",
    "shots",
    "survived_battles",
)

#: Ids below this are Xbox accounts, above PlayStation (reference: "The account ID space").
PS_THRESHOLD = 1_000_000_000


class Platform(enum.StrEnum):
    xbox = "xbox"
    ps = "ps"


def platform_of(account_id: int) -> Platform:
    return Platform.xbox if account_id < PS_THRESHOLD else Platform.ps


def platform_sql(account_id: str) -> str:
    """:func:`platform_of` in SQL, for the column or expression ``account_id``."""
    return f"(CASE WHEN {account_id} < {PS_THRESHOLD} THEN 'xbox' ELSE 'ps' END)"
