"""Materialise every leaderboard (board x window, both platforms) for one cycle date.

Layout (revision 0002): ``leaderboard_entries`` is LIST-partitioned by board, then by
window; a leaf ``lbe__<board>__<window>`` holds one row per ranked account with

* ``rank``: over both platforms, and ``platform_rank``: within the account's platform,
* ``score``, ``battles`` (in the window), ``platform``, ``as_of``,

and three unique indexes: ``(rank)``, ``(platform, platform_rank)``, ``(account_id)``,
so a top page, a player's rank and the players around him are index range scans on
one leaf. One row per account instead of one per (account, platform view) halves the
rows and the sort work; the ``all`` view reads ``rank`` and a platform view reads
``platform_rank``. ``leaderboard_builds`` holds, per board and window, the date the
leaf is as of and its totals, so a page's ``total`` is a primary-key lookup instead of
a count over millions of rows.

How a window is built (one transaction per window, :func:`materialise_window`):

1. the window's counters: ``players`` for ``all``; for ``day``/``week``/``month`` the
   ``diff_battles`` of the 1/7/30 days ending on the date, summed per account into a
   temporary table once and shared by every board;
2. per board, a fresh table ``lbe__<board>__<window>__new``, filled by one
   ``INSERT ... SELECT`` with two ``row_number()`` windows (score desc, account id asc:
   deterministic and gapless), then indexed and analysed -- while readers keep using
   the live leaf;
3. the swap: the old leaf is detached and dropped, the new one renamed and attached
   (its CHECK constraint proves the partition bound, so no validation scan), and the
   build recorded. Readers block for those few milliseconds of catalog work and then
   see the new boards; they never see a half-built one, and every board of a window
   changes together.

A scorer without SQL (``sql_score() is None``) is materialised by streaming the
window's rows out through a server-side cursor, scoring them in Python and COPYing
the scores into a temporary table that then goes through the same ranking statement.

Idempotent: re-running a date rebuilds the same boards. A date older than a board's
current ``as_of`` is refused unless ``force=True``, so a late re-run of an old cycle
cannot roll the boards back (the ``all`` window is always today's counters anyway).
Concurrent runs serialise on an advisory lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, text

from ..db import copy_rows

if TYPE_CHECKING:
    import psycopg
from ..models import COUNTERS
from .activity import materialise_activity
from .interfaces import WINDOWS, LeaderboardScorer, UnknownWindow
from .registry import Registry, default_registry

__all__ = [
    "WINDOW_DAYS",
    "BuildResult",
    "StaleSums",
    "board_in",
    "board_parent_in",
    "build_window_sums",
    "leaf_name",
    "materialise",
    "materialise_board",
    "materialise_window",
    "sums_name",
    "window_bounds",
    "window_sums_in",
]

log = logging.getLogger(__name__)

#: Days of diffs a window sums, ending on (and including) the as-of date.
WINDOW_DAYS = {"day": 1, "week": 7, "month": 30}
_LOCK_KEY = 0x6274_6C62  # "btlb"
_COUNTER_COLS = ", ".join(COUNTERS)
#: Memory for the window sums and the ranking sorts (per build connection).
DEFAULT_WORK_MEM = "256MB"
_BATCH = 20_000
_Params = dict[str, object]


@dataclass(frozen=True)
class BuildResult:
    """What one board x window build produced."""

    board: str
    window: str
    as_of: dt.date
    total: int
    total_xbox: int
    total_ps: int
    method: str  # "sql" or "python"
    seconds: float
    skipped: bool = False


def leaf_name(board: str, window: str) -> str:
    """The leaf partition holding ``board`` over ``window`` (names are pre-validated)."""
    return f"lbe__{board}__{window}"


def window_bounds(window: str, as_of: dt.date) -> tuple[dt.date, dt.date] | None:
    """The inclusive date range a window sums, or ``None`` for ``all`` (players)."""
    if window == "all":
        return None
    try:
        days = WINDOW_DAYS[window]
    except KeyError:
        raise UnknownWindow(f"no window named {window!r} (day, week, month, all)") from None
    return as_of - dt.timedelta(days=days - 1), as_of


def _finite_filter() -> str:
    return "score IS NOT NULL AND score NOT IN ('NaN', 'Infinity', '-Infinity')"


def _rank_insert(target: str, source_select: str) -> str:
    """One statement: score, filter and rank a window's rows into ``target``."""
    return f"""
        INSERT INTO {target} (account_id, battles, score, rank, platform_rank, as_of,
                              board, time_window, platform)
        SELECT account_id, battles, score,
               row_number() OVER (ORDER BY score DESC, account_id),
               row_number() OVER (PARTITION BY platform ORDER BY score DESC, account_id),
               :as_of, :board, :window, platform
        FROM ({source_select}) s
        WHERE {_finite_filter()}
    """


def _prepare_source(conn: Connection, window: str, as_of: dt.date) -> str:
    """Name of the relation holding the window's counters (creating it if summed)."""
    bounds = window_bounds(window, as_of)
    if bounds is None:
        return "players"
    sums = ", ".join(f"sum({c})::bigint AS {c}" for c in COUNTERS)
    conn.execute(
        text(
            f"""
            CREATE TEMPORARY TABLE lb_window_sums ON COMMIT DROP AS
            SELECT account_id, min(platform)::text AS platform, {sums}
            FROM diff_battles
            WHERE date BETWEEN :first AND :last
            GROUP BY account_id
            """
        ),
        {"first": bounds[0], "last": bounds[1]},
    )
    conn.execute(text("ANALYZE lb_window_sums"))
    return "lb_window_sums"


def _fill_sql(
    conn: Connection, target: str, scorer: LeaderboardScorer, source: str, params: _Params
) -> None:
    score_sql = scorer.sql_score()
    eligible = scorer.sql_eligible() or "true"
    select = (
        f"SELECT account_id, platform::text AS platform, battles, "
        f"({score_sql})::float8 AS score FROM {source} WHERE ({eligible})"
    )
    conn.execute(text(_rank_insert(target, select)), params)


def _fill_python(
    conn: Connection, target: str, scorer: LeaderboardScorer, source: str, params: _Params
) -> None:
    """The fallback: stream rows out, score in Python, COPY scores back, rank in SQL."""
    conn.execute(
        text(
            "CREATE TEMPORARY TABLE lb_python_scores (account_id bigint, platform text, "
            "battles bigint, score float8) ON COMMIT DROP"
        )
    )
    eligible = scorer.sql_eligible() or "true"
    raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    # A named (server-side) psycopg 3 cursor inside the same transaction: rows arrive in
    # batches instead of all at once.
    with raw.cursor(name="lb_stream") as cur:
        cur.itersize = _BATCH
        cur.execute(
            f"SELECT account_id, platform::text, {_COUNTER_COLS} FROM {source} "
            f"WHERE ({eligible})"
        )
        batch: list[tuple[int, str, int, float]] = []
        for row in cur:
            counters = dict(zip(COUNTERS, row[2:], strict=True))
            value = scorer.score(counters)
            if value is None or not math.isfinite(value):
                continue
            batch.append((row[0], row[1], counters["battles"], float(value)))
            if len(batch) >= _BATCH:
                _copy_scores(conn, batch)
                batch = []
        _copy_scores(conn, batch)
    conn.execute(
        text(_rank_insert(target, "SELECT account_id, platform, battles, score "
                                  "FROM lb_python_scores")),
        params,
    )
    conn.execute(text("DROP TABLE lb_python_scores"))


def _copy_scores(conn: Connection, batch: list[tuple[int, str, int, float]]) -> None:
    """Binary COPY: a float8 goes back bit for bit, no text round trip."""
    copy_rows(conn, "lb_python_scores", ("account_id", "platform", "battles", "score"), batch,
              types=("int8", "text", "int8", "float8"))


def _ensure_board_parent(conn: Connection, board: str) -> None:
    parent = f"lbe__{board}"
    exists = conn.execute(text("SELECT to_regclass(:n)"), {"n": parent}).scalar()
    if exists is None:
        conn.execute(
            text(
                f"CREATE TABLE {parent} PARTITION OF leaderboard_entries "
                f"FOR VALUES IN ('{board}') PARTITION BY LIST (time_window)"
            )
        )


def _build(
    conn: Connection, scorer: LeaderboardScorer, window: str, source: str, as_of: dt.date
) -> tuple[str, str]:
    """Build the new leaf of ``scorer`` x ``window`` aside; returns (new table, method)."""
    board = scorer.name
    new = leaf_name(board, window) + "__new"
    conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
    conn.execute(
        text(
            f"CREATE TABLE {new} (LIKE leaderboard_entries INCLUDING CONSTRAINTS "
            f"INCLUDING DEFAULTS)"
        )
    )
    conn.execute(
        text(
            f"ALTER TABLE {new} ADD CONSTRAINT {new}__bound "
            f"CHECK (board = '{board}' AND time_window = '{window}')"
        )
    )
    params: _Params = {"board": board, "window": window, "as_of": as_of}
    if scorer.sql_score() is not None:
        _fill_sql(conn, new, scorer, source, params)
        method = "sql"
    else:
        _fill_python(conn, new, scorer, source, params)
        method = "python"
    conn.execute(text(f"CREATE UNIQUE INDEX {new}__rank ON {new} (rank)"))
    conn.execute(text(f"CREATE UNIQUE INDEX {new}__prank ON {new} (platform, platform_rank)"))
    conn.execute(text(f"CREATE UNIQUE INDEX {new}__account ON {new} (account_id)"))
    conn.execute(text(f"ANALYZE {new}"))
    return new, method


def _swap(conn: Connection, board: str, window: str, new: str) -> None:
    leaf = leaf_name(board, window)
    parent = f"lbe__{board}"
    if conn.execute(text("SELECT to_regclass(:n)"), {"n": leaf}).scalar() is not None:
        conn.execute(text(f"ALTER TABLE {parent} DETACH PARTITION {leaf}"))
        conn.execute(text(f"DROP TABLE {leaf}"))
    conn.execute(text(f"ALTER TABLE {new} RENAME TO {leaf}"))
    for suffix in ("rank", "prank", "account"):
        conn.execute(text(f"ALTER INDEX {new}__{suffix} RENAME TO {leaf}__{suffix}"))
    conn.execute(text(f"ALTER TABLE {leaf} RENAME CONSTRAINT {new}__bound TO {leaf}__bound"))
    conn.execute(text(f"ALTER TABLE {parent} ATTACH PARTITION {leaf} FOR VALUES IN ('{window}')"))


def _record(
    conn: Connection, board: str, window: str, as_of: dt.date, method: str, seconds: float
) -> BuildResult:
    row = conn.execute(
        text(
            f"""
            INSERT INTO leaderboard_builds (board, time_window, as_of, total, total_xbox,
                                            total_ps, method, seconds, built_at)
            SELECT :board, :window, :as_of, count(*),
                   count(*) FILTER (WHERE platform = 'xbox'),
                   count(*) FILTER (WHERE platform = 'ps'), :method, :seconds, now()
            FROM {leaf_name(board, window)}
            ON CONFLICT (board, time_window) DO UPDATE SET
                as_of = excluded.as_of, total = excluded.total,
                total_xbox = excluded.total_xbox, total_ps = excluded.total_ps,
                method = excluded.method, seconds = excluded.seconds,
                built_at = excluded.built_at
            RETURNING total, total_xbox, total_ps
            """
        ),
        {"board": board, "window": window, "as_of": as_of, "method": method,
         "seconds": seconds},
    ).one()
    return BuildResult(board, window, as_of, row[0], row[1], row[2], method, seconds)


def materialise_window(
    conn: Connection,
    as_of: dt.date,
    window: str,
    scorers: Sequence[LeaderboardScorer],
    *,
    force: bool = False,
    work_mem: str = DEFAULT_WORK_MEM,
) -> list[BuildResult]:
    """Build and swap in every board of ``scorers`` over ``window``, in one transaction.

    ``conn`` must not be in a transaction; this commits (or rolls back on error).
    """
    window_bounds(window, as_of)  # validates the window
    results: list[BuildResult] = []
    # A new board's parent partition, in its own short transaction: creating it locks
    # leaderboard_entries exclusively, which must not last for a whole build.
    with conn.begin():
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        for scorer in scorers:
            _ensure_board_parent(conn, scorer.name)
    with conn.begin():
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        conn.execute(text("SELECT set_config('work_mem', :m, true)"), {"m": work_mem})
        current: dict[str, dt.date] = dict(
            conn.execute(
                text("SELECT board, as_of FROM leaderboard_builds WHERE time_window = :w"),
                {"w": window},
            ).all()
        )
        todo = []
        for scorer in scorers:
            newer = current.get(scorer.name)
            if newer is not None and newer > as_of and not force:
                log.info("skip %s/%s: built as of %s > %s", scorer.name, window, newer, as_of)
                results.append(BuildResult(scorer.name, window, newer, 0, 0, 0, "", 0.0, True))
            else:
                todo.append(scorer)
        if not todo:
            return results
        source = _prepare_source(conn, window, as_of)
        built: list[tuple[LeaderboardScorer, str, str, float]] = []
        for scorer in todo:
            t0 = time.perf_counter()
            new, method = _build(conn, scorer, window, source, as_of)
            built.append((scorer, new, method, time.perf_counter() - t0))
        # Swap every board of the window at the end, so the exclusive locks the swap
        # takes are held only for the catalog work, not during the builds.
        conn.execute(text("SET LOCAL lock_timeout = '30s'"))
        for scorer, new, method, seconds in built:
            _swap(conn, scorer.name, window, new)
            results.append(_record(conn, scorer.name, window, as_of, method, seconds))
    return results


class StaleSums(RuntimeError):
    """A board task found its window's sums missing or made for another date."""


def sums_name(window: str) -> str:
    """The unlogged table holding a window's per-account sums for the board tasks."""
    return f"lb_sums__{window}"


def _lock_key(*parts: str) -> int:
    """A stable advisory-lock key per board and window (or per window's sums)."""
    return 0x6274_0000_0000 + zlib.crc32("/".join(parts).encode())


def build_window_sums(conn: Connection, window: str, as_of: dt.date,
                      *, work_mem: str = DEFAULT_WORK_MEM) -> str:
    """(Re)build the window's sums once, for every board task of that window to read.

    Returns the relation the boards of ``window`` read (``players`` for ``all``). The
    sums go to an UNLOGGED table (rebuilt every night, never worth a WAL record or a
    backup), swapped in by rename and labelled with ``as_of`` so a board task can tell
    sums of another night from its own. ``conn`` must not be in a transaction.
    """
    with conn.begin():
        return window_sums_in(conn, window, as_of, work_mem=work_mem)


def window_sums_in(conn: Connection, window: str, as_of: dt.date,
                   *, work_mem: str = DEFAULT_WORK_MEM) -> str:
    """:func:`build_window_sums` inside the caller's transaction (which it commits with)."""
    bounds = window_bounds(window, as_of)
    if bounds is None:
        return "players"
    name, new = sums_name(window), sums_name(window) + "__new"
    sums = ", ".join(f"sum({c})::bigint AS {c}" for c in COUNTERS)
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("sums", window)})
    conn.execute(text("SELECT set_config('work_mem', :m, true)"), {"m": work_mem})
    conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
    conn.execute(
        text(
            f"CREATE UNLOGGED TABLE {new} AS "
            f"SELECT account_id, min(platform)::text AS platform, {sums} "
            f"FROM diff_battles WHERE date BETWEEN :first AND :last GROUP BY account_id"
        ),
        {"first": bounds[0], "last": bounds[1]},
    )
    conn.execute(text(f"ANALYZE {new}"))
    conn.execute(text("SET LOCAL lock_timeout = '30s'"))
    conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    conn.execute(text(f"ALTER TABLE {new} RENAME TO {name}"))
    conn.execute(text(f"COMMENT ON TABLE {name} IS '{as_of.isoformat()}'"))
    return name


def materialise_board(
    conn: Connection,
    as_of: dt.date,
    window: str,
    scorer: LeaderboardScorer,
    *,
    force: bool = False,
    work_mem: str = DEFAULT_WORK_MEM,
) -> BuildResult:
    """Build and swap in one board over one window, alone (one transaction).

    The unit of the parallel rebuild: each board x window is its own piece of the
    ``materialising`` stage (:mod:`battletracker.pipeline.boards`), so the nightly
    boards spread over the server worker's processes and no task holds more than one
    board's work (well inside a task time limit at 17 M accounts). The window's
    sums must have been built for ``as_of`` by :func:`build_window_sums`. Unlike
    :func:`materialise_window`, boards of a window are swapped one by one, each as soon
    as it is ready: a reader may see one board of tonight beside another of last night
    for a few minutes, never a half-built board. ``conn`` must not be in a transaction.
    """
    window_bounds(window, as_of)  # validates the window
    # in a short transaction of its own: creating the board's parent partition locks
    # leaderboard_entries exclusively, which must not last for a whole build
    with conn.begin():
        board_parent_in(conn, scorer.name)
    with conn.begin():
        return board_in(conn, as_of, window, scorer, force=force, work_mem=work_mem)


def board_parent_in(conn: Connection, board: str) -> None:
    """Make the board's parent partition if it is new, in the caller's (short) transaction."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    _ensure_board_parent(conn, board)


def board_in(
    conn: Connection,
    as_of: dt.date,
    window: str,
    scorer: LeaderboardScorer,
    *,
    force: bool = False,
    work_mem: str = DEFAULT_WORK_MEM,
) -> BuildResult:
    """:func:`materialise_board` inside the caller's transaction (the parent partition
    made before, in another one, by :func:`board_parent_in`); the swap commits with it."""
    window_bounds(window, as_of)
    board = scorer.name
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(board, window)})
    conn.execute(text("SELECT set_config('work_mem', :m, true)"), {"m": work_mem})
    newer = conn.execute(
        text("SELECT as_of FROM leaderboard_builds WHERE board = :b AND time_window = :w"),
        {"b": board, "w": window},
    ).scalar()
    if newer is not None and newer > as_of and not force:
        log.info("skip %s/%s: built as of %s > %s", board, window, newer, as_of)
        return BuildResult(board, window, newer, 0, 0, 0, "", 0.0, True)
    source = "players"
    if window != "all":
        source = sums_name(window)
        made_for = conn.execute(
            text("SELECT obj_description(to_regclass(:n), 'pg_class')"), {"n": source}
        ).scalar()
        if made_for != as_of.isoformat():
            raise StaleSums(f"{source} is for {made_for!r}, not {as_of}")
    t0 = time.perf_counter()
    new, method = _build(conn, scorer, window, source, as_of)
    seconds = time.perf_counter() - t0
    conn.execute(text("SET LOCAL lock_timeout = '30s'"))
    _swap(conn, board, window, new)
    return _record(conn, board, window, as_of, method, seconds)


def materialise(
    engine: Engine,
    as_of: dt.date,
    *,
    boards: Iterable[str] | None = None,
    windows: Iterable[str] = WINDOWS,
    registry: Registry | None = None,
    activity: bool = True,
    force: bool = False,
    work_mem: str = DEFAULT_WORK_MEM,
) -> list[BuildResult]:
    """Materialise ``boards`` (default: every registered board) over ``windows`` for the
    cycle date ``as_of``, then that date's daily activity. Returns one result per build.
    """
    reg = registry or default_registry()
    scorers = (
        list(reg.scorers().values()) if boards is None else [reg.scorer(b) for b in boards]
    )
    results: list[BuildResult] = []
    with engine.connect() as conn:
        for window in windows:
            t0 = time.perf_counter()
            results += materialise_window(
                conn, as_of, window, scorers, force=force, work_mem=work_mem
            )
            log.info("materialised %s boards over %s as of %s in %.1fs",
                     len(scorers), window, as_of, time.perf_counter() - t0)
        if activity:
            with conn.begin():
                conn.execute(text("SELECT set_config('work_mem', :m, true)"), {"m": work_mem})
                materialise_activity(conn, as_of)
    return results
