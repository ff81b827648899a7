"""The read API of leaderboards, player stats and activity (what ``web/`` calls).

Every function takes a sync SQLAlchemy ``Session`` and returns plain dataclasses. Board
lookups read one board table ``lbe__<board>__<window>`` (see
:mod:`battletracker.stats.materialise`): a top page reads ranks ``offset+1 ..
offset+limit`` through the table's BRIN rank index; a rank is a B-tree lookup by
account id; "around" is a rank lookup plus a BRIN range read. A board never built has
no table: its build row says so (read until the board is first seen built, then
remembered for the process). A top page is one SQL statement that
also reads the board's build row, so ``total``/``as_of`` and the entries always come
from the same materialisation.

Sessions should be request-scoped: a transaction left open after a read holds a lock
that makes the nightly swap of the boards wait (it gives up after 30 s and retries).

Errors (see :mod:`battletracker.stats.interfaces`): ``UnknownBoard`` and
``UnknownPlayer`` mean 404; ``UnknownWindow``, ``UnknownPlatform`` and ``InvalidQuery``
mean 422.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from ..models import COUNTERS
from .interfaces import (
    PLATFORMS,
    WINDOWS,
    InvalidQuery,
    UnknownPlatform,
    UnknownPlayer,
    UnknownWindow,
    min_battles_in,
)
from .materialise import leaf_name, platform_filter_sql, platform_sql
from .registry import default_registry

__all__ = [
    "BUILT_SQL",
    "MAX_AROUND",
    "MAX_DAYS",
    "MAX_LIMIT",
    "ActivityRow",
    "BoardInfo",
    "DayRow",
    "Entry",
    "Page",
    "PlayerStats",
    "activity",
    "around",
    "around_entries",
    "around_sql",
    "board_info",
    "list_boards",
    "player_history",
    "player_ranks",
    "player_ranks_of",
    "player_ranks_sql",
    "player_stats",
    "player_stats_of",
    "player_stats_sql",
    "rank_entry",
    "rank_of",
    "rank_sql",
    "top",
    "top_page",
    "top_sql",
]

#: Largest page :func:`top` serves.
MAX_LIMIT = 500
#: Largest ``n`` of :func:`around` (n above and n below).
MAX_AROUND = 100
#: Longest history :func:`player_history` and :func:`activity` serve.
MAX_DAYS = 3660


@dataclass(frozen=True)
class BoardInfo:
    """A board's description, for menus and the API's board list."""

    name: str
    title: str
    description: str
    unit: str
    format: str
    min_battles: int
    #: battles needed in each window (``min_battles``, raised over some windows)
    min_battles_by_window: dict[str, int] = field(default_factory=dict)
    windows: tuple[str, ...] = WINDOWS
    platforms: tuple[str, ...] = PLATFORMS


@dataclass(frozen=True)
class Entry:
    """One ranked account. ``rank`` is within the platform asked for (``all``: both)."""

    rank: int
    account_id: int
    nickname: str | None
    platform: str
    score: float
    battles: int


@dataclass(frozen=True)
class Page:
    """A slice of a board. ``total`` counts the board's entries on that platform;
    ``as_of`` is the cycle date it was built for (``None``: never materialised)."""

    board: str
    window: str
    platform: str
    entries: list[Entry]
    total: int
    offset: int
    limit: int
    as_of: dt.date | None


@dataclass(frozen=True)
class PlayerStats:
    """A player's current counters and every stat handler's stats, by handler name."""

    account_id: int
    nickname: str
    platform: str
    created_at: int | None
    last_battle_time: int | None
    last_seen: dt.date
    counters: dict[str, int]
    stats: dict[str, dict[str, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class DayRow:
    """A day on which a player's counters changed: that day's diffs and the total."""

    date: dt.date
    battles: int
    diffs: dict[str, int]
    total_battles: int | None


@dataclass(frozen=True)
class ActivityRow:
    """A platform's activity on one date (see :mod:`battletracker.stats.activity`)."""

    date: dt.date
    platform: str
    active_accounts: int
    battles: int
    new_accounts: int
    avg_battles_per_active: float | None
    unique_7d: int
    unique_30d: int
    unique_90d: int


# -- validation -----------------------------------------------------------------------


def _check_board(board: str) -> None:
    default_registry().scorer(board)  # UnknownBoard


def _check_window(window: str) -> None:
    if window not in WINDOWS:
        raise UnknownWindow(f"no window named {window!r} ({', '.join(WINDOWS)})")


def _check_platform(platform: str) -> None:
    if platform not in PLATFORMS:
        raise UnknownPlatform(f"no platform named {platform!r} ({', '.join(PLATFORMS)})")


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidQuery(f"{name} must be an integer between {low} and {high}")


def _board_args(board: str, window: str, platform: str) -> None:
    _check_board(board)
    _check_window(window)
    _check_platform(platform)


def _rank_col(platform: str) -> tuple[str, str]:
    """(rank column, extra filter) of a platform view."""
    if platform == "all":
        return "e.rank", ""
    return "e.platform_rank", f" AND {platform_filter_sql(platform, 'e.account_id')}"


_PLATFORM = platform_sql("e.account_id")


#: The boards built so far, by board and window: a board never built has no table, so
#: readers (this module's and the web app's async ones) ask before reading one.
BUILT_SQL = "SELECT board, time_window FROM leaderboard_builds"


#: (database, board, window) seen built. A board's table, once made, is only ever
#: replaced by a new one (dropped only by a migration), so a reader asks once per
#: process, not before every lookup: one round trip less per request.
_SEEN_BUILT: set[tuple[str, str, str]] = set()


def _built(session: Session, board: str, window: str) -> bool:
    """Whether the board has been built over the window (and so has its table)."""
    key = (str(session.get_bind().engine.url), board, window)
    if key in _SEEN_BUILT:
        return True
    found = session.execute(
        text("SELECT 1 FROM leaderboard_builds WHERE board = :b AND time_window = :w"),
        {"b": board, "w": window},
    ).first() is not None
    if found:
        _SEEN_BUILT.add(key)
    return found


def _entry(row: Any) -> Entry:
    return Entry(
        rank=row.rank,
        account_id=row.account_id,
        nickname=row.nickname,
        platform=row.platform,
        score=row.score,
        battles=row.battles,
    )


# -- boards ---------------------------------------------------------------------------


def list_boards() -> list[BoardInfo]:
    """Every registered board: built-ins first, then third-party boards by name."""
    return [board_info(name) for name in default_registry().scorers()]


def board_info(board: str) -> BoardInfo:
    """One board's description; :class:`UnknownBoard` if there is none."""
    s = default_registry().scorer(board)
    return BoardInfo(
        name=s.name,
        title=s.title,
        description=s.description,
        unit=s.unit,
        format=s.format,
        min_battles=s.min_battles,
        min_battles_by_window={w: min_battles_in(s, w) for w in WINDOWS},
    )


def top(
    session: Session,
    board: str,
    window: str,
    platform: str,
    *,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    """Entries ranked ``offset+1 .. offset+limit`` of a board on a platform."""
    sql, params = top_sql(board, window, platform, offset=offset, limit=limit)
    if not _built(session, board, window):
        return top_page([], board, window, platform, offset=offset, limit=limit)
    return top_page(session.execute(text(sql), params).all(), board, window, platform,
                    offset=offset, limit=limit)


def top_sql(board: str, window: str, platform: str, *, offset: int, limit: int
            ) -> tuple[str, dict[str, Any]]:
    """The statement of :func:`top` (checked arguments), for the sync and async readers;
    run it only on a board built (:data:`BUILT_SQL`): a board never built has no table."""
    _board_args(board, window, platform)
    _check_range("offset", offset, 0, 2**31 - 1)
    _check_range("limit", limit, 1, MAX_LIMIT)
    rank, where = _rank_col(platform)
    total_col = {"all": "b.total", "xbox": "b.total_xbox", "ps": "b.total_ps"}[platform]
    return (
        f"""
            SELECT b.as_of AS build_as_of, {total_col} AS build_total,
                   e.rank, e.account_id, e.nickname, e.platform, e.score, e.battles
            FROM leaderboard_builds b
            LEFT JOIN LATERAL (
                SELECT {rank} AS rank, e.account_id, p.nickname, {_PLATFORM} AS platform,
                       e.score, e.battles
                FROM {leaf_name(board, window)} e
                LEFT JOIN players p ON p.account_id = e.account_id
                WHERE {rank} > :offset AND {rank} <= :end{where}
                ORDER BY {rank}
            ) e ON true
            WHERE b.board = :board AND b.time_window = :window
            """,
        {"board": board, "window": window, "offset": offset, "end": offset + limit},
    )


def top_page(rows: Sequence[Any], board: str, window: str, platform: str, *, offset: int,
             limit: int) -> Page:
    """The :class:`Page` of :func:`top_sql`'s rows."""
    if not rows:
        return Page(board, window, platform, [], 0, offset, limit, None)
    entries = [_entry(r) for r in rows if r.account_id is not None]
    return Page(board, window, platform, entries, rows[0].build_total, offset, limit,
                rows[0].build_as_of)


def rank_of(session: Session, board: str, window: str, platform: str, account_id: int) -> Entry:
    """The account's entry on a board; :class:`UnknownPlayer` if it is not ranked there."""
    sql, params = rank_sql(board, window, platform, account_id)
    row = None
    if _built(session, board, window):
        row = session.execute(text(sql), params).one_or_none()
    return rank_entry(row, board, window, platform, account_id)


def rank_sql(board: str, window: str, platform: str, account_id: int
             ) -> tuple[str, dict[str, Any]]:
    """The statement of :func:`rank_of` (checked arguments; a built board only)."""
    _board_args(board, window, platform)
    rank, where = _rank_col(platform)
    return (
        f"""
                SELECT {rank} AS rank, e.account_id, p.nickname, {_PLATFORM} AS platform,
                       e.score, e.battles
                FROM {leaf_name(board, window)} e
                LEFT JOIN players p ON p.account_id = e.account_id
                WHERE e.account_id = :account_id{where}
                """,
        {"account_id": account_id},
    )


def rank_entry(row: Any, board: str, window: str, platform: str, account_id: int) -> Entry:
    """The :class:`Entry` of :func:`rank_sql`'s row; :class:`UnknownPlayer` when None."""
    if row is None:
        raise UnknownPlayer(
            f"account {account_id} is not ranked on {board}/{window}/{platform}"
        )
    return _entry(row)


def around(
    session: Session,
    board: str,
    window: str,
    platform: str,
    account_id: int,
    *,
    n: int = 5,
) -> list[Entry]:
    """The account's entry and up to ``n`` entries on either side of it, by rank.

    Near the top or the bottom of a board fewer than ``n`` exist on that side; the
    list is not shifted to make up for them.
    """
    sql, params = around_sql(board, window, platform, account_id, n=n)
    rows: Sequence[Any] = []
    if _built(session, board, window):
        rows = session.execute(text(sql), params).all()
    return around_entries(rows, board, window, platform, account_id)


def around_sql(board: str, window: str, platform: str, account_id: int, *, n: int
               ) -> tuple[str, dict[str, Any]]:
    """The statement of :func:`around` (checked arguments; a built board only)."""
    _board_args(board, window, platform)
    _check_range("n", n, 0, MAX_AROUND)
    rank, where = _rank_col(platform)
    return (
        f"""
            WITH me AS (
                SELECT {rank} AS r FROM {leaf_name(board, window)} e
                WHERE e.account_id = :account_id{where}
            )
            SELECT e.rank, e.account_id, p.nickname, e.platform, e.score, e.battles
            FROM me
            CROSS JOIN LATERAL (
                -- the LIMIT tells the planner how few rows this is (the rank is unknown
                -- at plan time): a read of a few BRIN page ranges, never a table scan
                SELECT {rank} AS rank, e.account_id, {_PLATFORM} AS platform, e.score,
                       e.battles
                FROM {leaf_name(board, window)} e
                WHERE {rank} >= me.r - :n AND {rank} <= me.r + :n{where}
                ORDER BY {rank}
                LIMIT :size
            ) e
            LEFT JOIN players p ON p.account_id = e.account_id
            ORDER BY e.rank
            """,
        {"account_id": account_id, "n": n, "size": 2 * n + 1},
    )


def around_entries(rows: Sequence[Any], board: str, window: str, platform: str,
                   account_id: int) -> list[Entry]:
    """The entries of :func:`around_sql`'s rows; :class:`UnknownPlayer` when none."""
    if not rows:
        raise UnknownPlayer(
            f"account {account_id} is not ranked on {board}/{window}/{platform}"
        )
    return [_entry(r) for r in rows]


def player_ranks(session: Session, account_id: int, *, window: str = "all") -> dict[str, Entry]:
    """The account's entry (rank over both platforms) on every board it is ranked on."""
    _check_window(window)
    built = {
        board for board, built_window in session.execute(text(BUILT_SQL)).all()
        if built_window == window
    }
    statement = player_ranks_sql(account_id, window=window, built=built)
    if statement is None:
        return {}
    sql, params = statement
    return player_ranks_of(session.execute(text(sql), params).all())


def player_ranks_sql(account_id: int, *, window: str = "all", built: Collection[str]
                     ) -> tuple[str, dict[str, Any]] | None:
    """The statement of :func:`player_ranks` over the boards ``built`` over ``window``
    (checked arguments); None when no board is built."""
    _check_window(window)
    reads = [
        f"""SELECT '{name}' AS board, e.rank, e.account_id, p.nickname,
                   {_PLATFORM} AS platform, e.score, e.battles
            FROM {leaf_name(name, window)} e
            LEFT JOIN players p ON p.account_id = e.account_id
            WHERE e.account_id = :account_id"""
        for name in default_registry().scorers()
        if name in built
    ]
    if not reads:
        return None
    return " UNION ALL ".join(reads), {"account_id": account_id}


def player_ranks_of(rows: Sequence[Any]) -> dict[str, Entry]:
    """The entries of :func:`player_ranks_sql`'s rows, by board, in the boards' order."""
    names = list(default_registry().scorers())
    found = {r.board: _entry(r) for r in rows}
    return {name: found[name] for name in names if name in found}


# -- players --------------------------------------------------------------------------


def player_stats(session: Session, account_id: int) -> PlayerStats:
    """Current counters and every stat handler's stats; :class:`UnknownPlayer` if none."""
    sql, params = player_stats_sql(account_id)
    return player_stats_of(session.execute(text(sql), params).one_or_none(), account_id)


def player_stats_sql(account_id: int) -> tuple[str, dict[str, Any]]:
    """The statement of :func:`player_stats`."""
    return (
        f"SELECT account_id, platform, nickname, created_at, last_battle_time, last_seen, "
        f"{', '.join(COUNTERS)} FROM players WHERE account_id = :a",
        {"a": account_id},
    )


def player_stats_of(row: Any, account_id: int) -> PlayerStats:
    """The :class:`PlayerStats` of :func:`player_stats_sql`'s row; UnknownPlayer when None."""
    if row is None:
        raise UnknownPlayer(f"no account {account_id}")
    counters = {c: int(getattr(row, c)) for c in COUNTERS}
    stats = {h.name: h.stats(counters) for h in default_registry().handlers()}
    return PlayerStats(
        account_id=row.account_id,
        nickname=row.nickname,
        platform=str(row.platform),
        created_at=row.created_at,
        last_battle_time=row.last_battle_time,
        last_seen=row.last_seen,
        counters=counters,
        stats=stats,
    )


def _latest_date(session: Session) -> dt.date | None:
    value = session.execute(text("SELECT max(date) FROM cycles")).scalar()
    return value if isinstance(value, dt.date) else None


def player_history(session: Session, account_id: int, *, days: int = 90) -> list[DayRow]:
    """The days on which the account's counters changed, oldest first, within the ``days``
    ending on the latest cycle date (or the account's latest change if there is no cycle).

    Only days with a change are listed (a player who did not play has no row that day);
    ``total_battles`` is the account's battle count after that day.
    """
    _check_range("days", days, 1, MAX_DAYS)
    last_seen = session.execute(
        text("SELECT last_seen FROM players WHERE account_id = :a"), {"a": account_id}
    ).scalar()
    if last_seen is None:
        raise UnknownPlayer(f"no account {account_id}")
    last = _latest_date(session) or session.execute(
        text("SELECT max(date) FROM diff_battles WHERE account_id = :a"), {"a": account_id}
    ).scalar()
    if last is None:
        return []
    first = last - dt.timedelta(days=days - 1)
    cols = ", ".join(f"d.{c}" for c in COUNTERS)
    rows = session.execute(
        text(
            f"""
            SELECT d.date, {cols}, t.battles AS total_battles
            FROM diff_battles d
            LEFT JOIN total_battles t ON t.account_id = d.account_id AND t.date = d.date
            WHERE d.account_id = :a AND d.date BETWEEN :first AND :last
            ORDER BY d.date
            """
        ),
        {"a": account_id, "first": first, "last": last},
    ).all()
    return [
        DayRow(
            date=r.date,
            battles=int(r.battles),
            diffs={c: int(getattr(r, c)) for c in COUNTERS},
            total_battles=None if r.total_battles is None else int(r.total_battles),
        )
        for r in rows
    ]


# -- activity -------------------------------------------------------------------------


def activity(
    session: Session, *, days: int = 90, platform: str | None = None
) -> list[ActivityRow]:
    """Daily activity per platform for the ``days`` ending on the latest materialised
    date, oldest first (``xbox`` before ``ps`` on each date). ``platform`` ``None`` or
    ``"all"`` gives both platforms' rows; the platforms' numbers add up to the total.
    """
    _check_range("days", days, 1, MAX_DAYS)
    if platform is not None:
        _check_platform(platform)
    plat = None if platform in (None, "all") else platform
    rows = session.execute(
        text(
            """
            SELECT date, platform, active_accounts, battles, new_accounts,
                   unique_7d, unique_30d, unique_90d
            FROM daily_activity
            WHERE date > (SELECT max(date) FROM daily_activity) - :days
              AND (CAST(:platform AS text) IS NULL OR platform = :platform)
            ORDER BY date, platform DESC
            """
        ),
        {"days": days, "platform": plat},
    ).all()
    return [
        ActivityRow(
            date=r.date,
            platform=r.platform,
            active_accounts=int(r.active_accounts),
            battles=int(r.battles),
            new_accounts=int(r.new_accounts),
            avg_battles_per_active=(
                r.battles / r.active_accounts if r.active_accounts else None
            ),
            unique_7d=int(r.unique_7d),
            unique_30d=int(r.unique_30d),
            unique_90d=int(r.unique_90d),
        )
        for r in rows
    ]
