"""Materialise every leaderboard (board x window, both platforms) for one cycle date.

Layout (revision 0010, "compact boards"; partitioned by platform since): one table per
board and window, ``lbe__<board>__<window>``, one row per ranked account, and nothing
in it that is the same on every row (board, window and as-of date live in
``leaderboard_builds``)::

    score float8, account_id int4, battles int4, rank int4, platform_rank int4

24 bytes of data: a 48-byte heap tuple (fillfactor 100, never updated; ``account_id``
becomes ``bigint`` by itself if an id ever passes 2^31-1, the real ones end near
1.09e9). ``rank`` is over both platforms, ``platform_rank`` within the account's
platform, which is not stored: it is the account id's (ids from ``PS_THRESHOLD`` up are
PlayStation's, the rule every stage uses). The table is partitioned by that same rule
(``<table>_xbox``, ``<table>_ps``) and each partition gets its rows in rank order, so
inside it both ranks grow with the row's position; that makes one small BRIN index on
``(rank, platform_rank)`` per partition (:data:`PAGES_PER_RANGE` pages a range) enough
for a top page and for the rows around a player: it points at a few page ranges. The
one B-tree per partition is the unique ``(account_id)`` index a player's rank is
looked up by. Per ranked row that is ~52 bytes of heap and ~20 of B-tree, against ~160
in the first layout (constant text columns, three B-trees). ``leaderboard_builds``
holds, per board and window, the date the table is as of and its totals, so a page's
``total`` is a primary-key lookup instead of a count over millions of rows.

How a window is built (one transaction per window, :func:`materialise_window`):

1. the window's counters: ``players`` for ``all``; for ``day``/``week``/``month`` the
   ``diff_battles`` of the 1/7/30 days ending on the date, summed per account into a
   temporary table once and shared by every board;
2. per board, a fresh table ``lbe__<board>__<window>__new``, filled by one
   ``INSERT ... SELECT`` sorting the rows once (score desc, account id asc:
   deterministic and gapless ranks), then indexed and analysed -- while readers keep
   using the live table;
3. the swap: the old table is dropped and the new one (and its partitions) renamed.
   Readers block for those few milliseconds of catalog work and then see the new
   boards; they never see a half-built one, and every board of a window changes
   together.

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
from ..roles import WEB_ROLE

if TYPE_CHECKING:
    import psycopg
from ..constants import platform_sql
from ..models import COUNTERS, PS_THRESHOLD
from .activity import materialise_activity
from .interfaces import WINDOWS, LeaderboardScorer, UnknownWindow, min_battles_in
from .registry import Registry, default_registry

__all__ = [
    "PARTITIONS",
    "WINDOW_DAYS",
    "BuildResult",
    "StaleSums",
    "board_in",
    "build_window_sums",
    "leaf_name",
    "materialise",
    "materialise_board",
    "materialise_window",
    "partition_name",
    "platform_filter_sql",
    "platform_sql",
    "summed_in_order",
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
#: Heap pages per BRIN range of a board's rank index: a top page or an "around" reads
#: a few ranges of this many pages (157 rows a page); the index itself stays tiny.
PAGES_PER_RANGE = 4
#: Largest account id a board table stores as ``integer``; above it (never yet: the
#: real ids end near 1.09e9) the build falls back to ``bigint`` on its own.
INT4_MAX = 2**31 - 1
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


def platform_filter_sql(platform: str, account_id: str) -> str:
    """SQL keeping the rows of ``platform`` (``xbox`` or ``ps``)."""
    op = {"xbox": "<", "ps": ">="}[platform]
    return f"{account_id} {op} {PS_THRESHOLD}"


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
    """One statement, one sort: score, filter and rank a window's rows into ``target``.

    Both ranks come out of a single pass over the rows in (score desc, account id)
    order: ``rank`` is the row's number in it, and ``platform_rank`` the number of rows
    of its platform so far (a running count of PlayStation's rows gives both
    platforms' counts). The rows go out in that same order, so the target's two
    partitions each receive their platform's rows in rank order (what the BRIN rank
    index relies on) without a second sort; three sorts of every row were the boards'
    main cost at millions of players.
    """
    ps = platform_filter_sql("ps", "account_id")
    return f"""
        INSERT INTO {target} (score, account_id, battles, rank, platform_rank)
        SELECT score, account_id, battles, rank,
               CASE WHEN {ps} THEN ps_so_far ELSE rank - ps_so_far END
        FROM (
            SELECT account_id, battles, score,
                   row_number() OVER w AS rank,
                   count(*) FILTER (WHERE {ps}) OVER w AS ps_so_far
            FROM ({source_select}) s
            WHERE {_finite_filter()}
            WINDOW w AS (ORDER BY score DESC, account_id ROWS UNBOUNDED PRECEDING)
        ) ranked
        ORDER BY score DESC, account_id
    """


def _prepare_source(conn: Connection, window: str, as_of: dt.date) -> str:
    """Name of the relation holding the window's counters (creating it if summed)."""
    bounds = window_bounds(window, as_of)
    if bounds is None:
        return "players"
    create = "CREATE TEMPORARY TABLE lb_window_sums ON COMMIT DROP AS " + _SUMS_SELECT
    summed_in_order(conn, create, {"first": bounds[0], "last": bounds[1]})
    conn.execute(text("ANALYZE lb_window_sums"))
    return "lb_window_sums"


#: Per-account sums of the diffs of ``:first .. :last``; ``diff_rows`` counts the diff
#: rows summed, so an account whose last row leaves the window leaves the sums.
_SUMS_SELECT = (
    "SELECT account_id, "
    + ", ".join(f"sum({c})::bigint AS {c}" for c in COUNTERS)
    + ", count(*)::int AS diff_rows FROM diff_battles "
    "WHERE date BETWEEN :first AND :last GROUP BY account_id"
)
#: The planner's choice for the sums (a hash aggregate over a scan of the days) spills
#: to disk once the accounts' states pass ``work_mem`` (5 M accounts); reading the
#: diffs in ``(account_id, date)`` order through each partition's primary key and
#: summing one account at a time needs no memory and no sort: on 30 M diff rows of 5 M
#: accounts, 23 s against 54 s (a month) and 14 s against 28 s (a week), and linear
#: in the accounts (5.1 s for 1 M). See docs/performance.md.
_IN_ORDER = {"enable_hashagg": "off", "enable_sort": "off"}


def summed_in_order(conn: Connection, statement: str, params: _Params) -> None:
    """Run ``statement`` (an aggregate by ``account_id``) as a streamed, ordered read.

    The planner settings hold for this statement only (``set_config(..., true)`` in the
    caller's transaction, then put back), so the ranking sorts that follow still sort.
    """
    before = {name: conn.execute(text("SELECT current_setting(:n)"), {"n": name}).scalar_one()
              for name in _IN_ORDER}  # fmt: skip
    for name, value in _IN_ORDER.items():
        conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
    conn.execute(text(statement), params)
    for name, value in before.items():
        conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})


def _eligible(scorer: LeaderboardScorer, window: str) -> str:
    """The scorer's eligibility rule, and the window's raised minimum if it has one."""
    rule = scorer.sql_eligible() or "true"
    floor = min_battles_in(scorer, window)
    if floor > scorer.min_battles:
        rule = f"({rule}) AND battles >= {int(floor)}"
    return rule


def _fill_sql(
    conn: Connection, target: str, scorer: LeaderboardScorer, source: str, params: _Params,
    window: str,
) -> None:
    score_sql = scorer.sql_score()
    eligible = _eligible(scorer, window)
    select = (
        f"SELECT account_id, battles, "
        f"({score_sql})::float8 AS score FROM {source} WHERE ({eligible})"
    )
    conn.execute(text(_rank_insert(target, select)), params)


def _fill_python(
    conn: Connection, target: str, scorer: LeaderboardScorer, source: str, params: _Params,
    window: str,
) -> None:
    """The fallback: stream rows out, score in Python, COPY scores back, rank in SQL."""
    conn.execute(
        text(
            "CREATE TEMPORARY TABLE lb_python_scores (account_id bigint, battles bigint, "
            "score float8) ON COMMIT DROP"
        )
    )
    eligible = _eligible(scorer, window)
    raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
    # A named (server-side) psycopg 3 cursor inside the same transaction: rows arrive in
    # batches instead of all at once.
    with raw.cursor(name="lb_stream") as cur:
        cur.itersize = _BATCH
        cur.execute(f"SELECT account_id, {_COUNTER_COLS} FROM {source} WHERE ({eligible})")
        batch: list[tuple[int, int, float]] = []
        for row in cur:
            counters = dict(zip(COUNTERS, row[1:], strict=True))
            value = scorer.score(counters)
            if value is None or not math.isfinite(value):
                continue
            batch.append((row[0], counters["battles"], float(value)))
            if len(batch) >= _BATCH:
                _copy_scores(conn, batch)
                batch = []
        _copy_scores(conn, batch)
    conn.execute(
        text(_rank_insert(target, "SELECT account_id, battles, score "
                                  "FROM lb_python_scores")),
        params,
    )
    conn.execute(text("DROP TABLE lb_python_scores"))


def _copy_scores(conn: Connection, batch: list[tuple[int, int, float]]) -> None:
    """Binary COPY: a float8 goes back bit for bit, no text round trip."""
    copy_rows(conn, "lb_python_scores", ("account_id", "battles", "score"), batch,
              types=("int8", "int8", "float8"))


#: A board table's two partitions, by the platform of the account id (suffix, bounds).
PARTITIONS = (("xbox", f"MINVALUE) TO ({PS_THRESHOLD}"), ("ps", f"{PS_THRESHOLD}) TO (MAXVALUE"))


def partition_name(table: str, platform: str) -> str:
    """The partition of board table ``table`` holding ``platform``'s rows."""
    return f"{table}_{platform}"


def _create_board_table(conn: Connection, name: str) -> None:
    """An empty board table (see the module's docstring for why these columns, in this
    order: the float8 first, so the four int4 after it need no alignment padding),
    partitioned by platform: one sorted pass fills both halves in rank order."""
    # every ranked account is a player (an index lookup); were one not, and above
    # INT4_MAX, the insert would fail loudly ("integer out of range"), never truncate
    highest = conn.execute(text("SELECT max(account_id) FROM players")).scalar()
    id_type = "integer" if highest is None or highest <= INT4_MAX else "bigint"
    conn.execute(
        text(
            f"""
            CREATE TABLE {name} (
                score         double precision NOT NULL,
                account_id    {id_type}        NOT NULL,
                battles       integer          NOT NULL,
                rank          integer          NOT NULL,
                platform_rank integer          NOT NULL
            ) PARTITION BY RANGE (account_id)
            """
        )
    )
    for platform, bounds in PARTITIONS:
        conn.execute(
            text(
                f"CREATE TABLE {partition_name(name, platform)} PARTITION OF {name} "
                f"FOR VALUES FROM ({bounds}) WITH (fillfactor = 100, autovacuum_enabled = false)"
            )
        )
    # Readers query the parent (access through it needs no grant on the partitions):
    # the web app's role may read it, as it may every other table, and nothing more.
    if conn.execute(text("SELECT to_regrole(:r)"), {"r": WEB_ROLE}).scalar() is not None:
        conn.execute(text(f"GRANT SELECT ON {name} TO {WEB_ROLE}"))


def _index_board_table(conn: Connection, name: str) -> None:
    """Each partition's account B-tree (unique in all: the partitions split the ids) and
    BRIN on the ranks; the parent needs no index of its own."""
    for platform, _ in PARTITIONS:
        part = partition_name(name, platform)
        conn.execute(
            text(f"CREATE UNIQUE INDEX {part}__account ON {part} (account_id) "
                 f"WITH (fillfactor = 100)")
        )
        conn.execute(
            text(f"CREATE INDEX {part}__ranks ON {part} USING brin (rank, platform_rank) "
                 f"WITH (pages_per_range = {PAGES_PER_RANGE})")
        )
    conn.execute(text(f"ANALYZE {name}"))


def _build(
    conn: Connection, scorer: LeaderboardScorer, window: str, source: str, as_of: dt.date
) -> tuple[str, str]:
    """Build the new leaf of ``scorer`` x ``window`` aside; returns (new table, method)."""
    board = scorer.name
    new = leaf_name(board, window) + "__new"
    conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
    _create_board_table(conn, new)
    params: _Params = {}
    if scorer.sql_score() is not None:
        _fill_sql(conn, new, scorer, source, params, window)
        method = "sql"
    else:
        _fill_python(conn, new, scorer, source, params, window)
        method = "python"
    _index_board_table(conn, new)
    return new, method


def _swap(conn: Connection, board: str, window: str, new: str) -> None:
    leaf = leaf_name(board, window)
    conn.execute(text(f"DROP TABLE IF EXISTS {leaf}"))
    conn.execute(text(f"ALTER TABLE {new} RENAME TO {leaf}"))
    for platform, _ in PARTITIONS:
        old_part, part = partition_name(new, platform), partition_name(leaf, platform)
        conn.execute(text(f"ALTER TABLE {old_part} RENAME TO {part}"))
        for suffix in ("account", "ranks"):
            conn.execute(text(f"ALTER INDEX {old_part}__{suffix} RENAME TO {part}__{suffix}"))


def _record(
    conn: Connection, board: str, window: str, as_of: dt.date, method: str, seconds: float
) -> BuildResult:
    row = conn.execute(
        text(
            f"""
            INSERT INTO leaderboard_builds (board, time_window, as_of, total, total_xbox,
                                            total_ps, method, seconds, built_at)
            SELECT :board, :window, :as_of, count(*),
                   count(*) FILTER (WHERE {platform_filter_sql("xbox", "account_id")}),
                   count(*) FILTER (WHERE {platform_filter_sql("ps", "account_id")}),
                   :method, :seconds, now()
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


#: The next night's sums from last night's: + the new day's diffs, - the day that left
#: the window. Two hash joins over one day each and one pass over the old sums, instead
#: of summing every day of the window again (a month: ~5x fewer rows, and no sort).
_NEXT_SUMS = (
    "CREATE UNLOGGED TABLE {new} AS SELECT account_id, "
    + ", ".join(f"coalesce(p.{c}, 0) + coalesce(d.{c}, 0) AS {c}" for c in COUNTERS)
    + """, coalesce(p.diff_rows, 0) + coalesce(d.diff_rows, 0) AS diff_rows
    FROM {old} p FULL JOIN (
        SELECT account_id, """
    + ", ".join(f"coalesce(t.{c}, 0) - coalesce(x.{c}, 0) AS {c}" for c in COUNTERS)
    + """, (t.account_id IS NOT NULL)::int - (x.account_id IS NOT NULL)::int AS diff_rows
        FROM (SELECT * FROM diff_battles WHERE date = :last) t
        FULL JOIN (SELECT * FROM diff_battles WHERE date = :gone) x USING (account_id)
    ) d USING (account_id)
    WHERE coalesce(p.diff_rows, 0) + coalesce(d.diff_rows, 0) > 0"""
)
#: What the diffs of a range of dates are, as of now: each date's night and when its
#: diffs were written. ``compute_diffs`` is the only writer of ``diff_battles``, once
#: per night and with ``diffed_at`` in the same transaction, so equal fingerprints mean
#: equal diffs.
_DIFFS_FINGERPRINT = """
SELECT md5(coalesce(string_agg(date || '/' || id || '/' || diffed_at, ',' ORDER BY date), ''))
FROM cycles WHERE date BETWEEN :first AND :last AND diffed_at IS NOT NULL
"""


def _sums_label(conn: Connection, as_of: dt.date, first: dt.date, last: dt.date) -> str:
    """A window sums' label: the date they are for and the fingerprint of their diffs."""
    fingerprint = conn.execute(text(_DIFFS_FINGERPRINT), {"first": first, "last": last})
    return f"{as_of.isoformat()} {fingerprint.scalar_one()}"


def _label_date(label: str | None) -> str | None:
    """The date part of a sums table's label (None when it has none)."""
    return None if label is None else label.split(" ", 1)[0]


def window_sums_in(conn: Connection, window: str, as_of: dt.date,
                   *, work_mem: str = DEFAULT_WORK_MEM) -> str:
    """:func:`build_window_sums` inside the caller's transaction (which it commits with).

    When the live sums are the previous night's and the diffs they summed are still
    the same (their label), the new ones are made from them (:data:`_NEXT_SUMS`);
    otherwise every day of the window is summed again. Both give the same rows.
    """
    bounds = window_bounds(window, as_of)
    if bounds is None:
        return "players"
    first, last = bounds
    day = dt.timedelta(days=1)
    name, new = sums_name(window), sums_name(window) + "__new"
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("sums", window)})
    conn.execute(text("SELECT set_config('work_mem', :m, true)"), {"m": work_mem})
    conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
    live = conn.execute(
        text("SELECT obj_description(to_regclass(:n), 'pg_class')"), {"n": name}
    ).scalar()
    if first < last and live == _sums_label(conn, as_of - day, first - day, last - day):
        log.info("sums of %s as of %s: from the previous night's", window, as_of)
        conn.execute(text(_NEXT_SUMS.format(new=new, old=name)),
                     {"last": last, "gone": first - day})  # fmt: skip
    else:
        log.info("sums of %s as of %s: every day summed", window, as_of)
        summed_in_order(conn, f"CREATE UNLOGGED TABLE {new} AS {_SUMS_SELECT}",
                        {"first": first, "last": last})
    label = _sums_label(conn, as_of, first, last)
    conn.execute(text(f"ANALYZE {new}"))
    conn.execute(text("SET LOCAL lock_timeout = '30s'"))
    conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    conn.execute(text(f"ALTER TABLE {new} RENAME TO {name}"))
    conn.execute(text(f"COMMENT ON TABLE {name} IS '{label}'"))
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
    with conn.begin():
        return board_in(conn, as_of, window, scorer, force=force, work_mem=work_mem)


def board_in(
    conn: Connection,
    as_of: dt.date,
    window: str,
    scorer: LeaderboardScorer,
    *,
    force: bool = False,
    work_mem: str = DEFAULT_WORK_MEM,
) -> BuildResult:
    """:func:`materialise_board` inside the caller's transaction; the swap commits with it."""
    window_bounds(window, as_of)  # validates the window
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
        if _label_date(made_for) != as_of.isoformat():
            raise StaleSums(f"{source} is for {_label_date(made_for)!r}, not {as_of}")
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
