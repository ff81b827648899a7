"""Nickname search: case-insensitive, by prefix, from ``ix_players_nickname_lower``.

The condition is a range on ``lower(nickname)`` in byte order (the ``text_pattern_ops``
operators ``~>=~``/``~<=~``), which the index answers as a range scan, already in the
order shown, and stops after ``limit`` rows: a one-letter prefix over 27 M players costs
what a ten-letter one does. No ``LIKE``: a bound pattern can only use the index in a
custom plan, and ``%``/``_`` in a nickname would need escaping.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["MAX_PREFIX", "PlayerMatch", "search_players"]

#: Longer than any nickname (Xbox names carry a ``-x`` suffix on the unified host).
MAX_PREFIX = 64
#: The highest code point: ``prefix || U+10FFFF`` is above every nickname starting with it.
_TOP = "chr(1114111)"

_QUERY = text(f"""
    SELECT account_id, nickname, platform, last_seen, battles
    FROM players
    WHERE lower(nickname) ~>=~ lower(:prefix)
      AND lower(nickname) ~<=~ (lower(:prefix) || {_TOP})
      AND (CAST(:platform AS text) IS NULL OR CAST(platform AS text) = :platform)
    ORDER BY lower(nickname) USING ~<~, account_id
    LIMIT :limit
""")


@dataclass(frozen=True)
class PlayerMatch:
    """A player whose nickname starts with the prefix searched for."""

    account_id: int
    nickname: str
    platform: str
    last_seen: dt.date
    battles: int


def search_players(session: Session, prefix: str, *, platform: str | None = None,
                   limit: int = 20) -> list[PlayerMatch]:
    """Players whose nickname starts with ``prefix`` (any case), by nickname, then id.

    ``platform`` ``None`` or ``"all"`` searches both. ``prefix`` must be 1 to
    :data:`MAX_PREFIX` characters (the routes validate it; here it is a ValueError).
    """
    if not 1 <= len(prefix) <= MAX_PREFIX:
        raise ValueError(f"prefix must be 1 to {MAX_PREFIX} characters")
    rows = session.execute(_QUERY, {
        "prefix": prefix, "limit": limit,
        "platform": None if platform in (None, "all") else platform}).all()
    return [PlayerMatch(int(r.account_id), r.nickname, str(r.platform), r.last_seen,
                        int(r.battles)) for r in rows]
