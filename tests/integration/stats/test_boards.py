"""Materialised boards against a brute-force recomputation from the scorers' Python rule."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from battletracker.db import engine_for
from battletracker.settings import Settings
from battletracker.stats import queries
from battletracker.stats.interfaces import (
    PLATFORMS,
    WINDOWS,
    InvalidQuery,
    StatsError,
    UnknownBoard,
    UnknownPlatform,
    UnknownPlayer,
    UnknownWindow,
)
from battletracker.stats.materialise import leaf_name, materialise
from battletracker.stats.registry import default_registry

from .data import Dataset, brute_force, build, ids_of, insert

pytestmark = pytest.mark.integration

BUILTIN = ("battles", "win_rate", "avg_damage", "frags_per_battle", "survival_rate")
CASES = [(b, w, p) for b in BUILTIN for w in WINDOWS for p in PLATFORMS]


@pytest.fixture(scope="module")
def data() -> Dataset:
    return build()


@pytest.fixture(scope="module")
def db(module_db_settings: Settings, data: Dataset) -> Settings:
    engine = engine_for(module_db_settings)
    with engine.begin() as conn:
        insert(conn, data)
    materialise(engine, data.as_of, boards=BUILTIN)
    return module_db_settings


@pytest.fixture
def session(db: Settings) -> Iterator[Session]:
    with Session(engine_for(db)) as s:
        yield s


def _all_pages(session: Session, board: str, window: str, platform: str, limit: int):
    entries, offset = [], 0
    while True:
        page = queries.top(session, board, window, platform, offset=offset, limit=limit)
        entries += page.entries
        if len(page.entries) < limit:
            return page, entries
        offset += limit


@pytest.mark.parametrize(("board", "window", "platform"), CASES)
def test_board_matches_brute_force_and_pages_completely(session, data, board, window, platform):
    expected = brute_force(data.window_counters(window), default_registry().scorer(board),
                           platform, window)
    assert expected, "the synthetic data should rank somebody on every board"
    page, entries = _all_pages(session, board, window, platform, limit=37)
    got = [(e.rank, e.account_id, e.score, e.battles) for e in entries]
    # exact float equality: the SQL and the Python rule do the same float8 arithmetic
    assert got == expected
    assert page.total == len(expected)
    assert page.as_of == data.as_of
    assert len(set(ids_of(entries))) == len(entries)  # no duplicates across pages
    assert all(e.nickname == f"nick{e.account_id}" for e in entries)
    assert all(e.platform == data.players[e.account_id][0] for e in entries)


@pytest.mark.parametrize(("board", "window", "platform"), CASES)
def test_rank_of_and_around_agree_with_the_sorted_list(session, data, board, window, platform):
    expected = brute_force(data.window_counters(window), default_registry().scorer(board),
                           platform, window)
    by_rank = {r: a for r, a, _, _ in expected}
    picks = {expected[0], expected[-1], expected[len(expected) // 2], expected[1 % len(expected)]}
    for rank, account, score, _ in picks:
        entry = queries.rank_of(session, board, window, platform, account)
        assert (entry.rank, entry.score) == (rank, score)
        near = queries.around(session, board, window, platform, account, n=3)
        want = [by_rank[r] for r in range(max(1, rank - 3), min(len(expected), rank + 3) + 1)]
        assert ids_of(near) == want
        assert [e.rank for e in near] == list(range(max(1, rank - 3), rank - 3 + len(near)
                                                    + max(0, 1 - (rank - 3))))


def test_ties_are_broken_by_account_id(session, data):
    # The tie group has identical counters on every board and window: it must appear in
    # ascending account id order, and whoever ranks between its members has the same
    # score and an account id in between.
    for board in BUILTIN:
        for window in WINDOWS:
            entries = [queries.rank_of(session, board, window, "all", a)
                       for a in data.tie_group]
            assert len({e.score for e in entries}) == 1
            ranks = [e.rank for e in entries]
            assert ranks == sorted(ranks), (board, window)
            between = queries.top(session, board, window, "all", offset=ranks[0] - 1,
                                  limit=ranks[-1] - ranks[0] + 1).entries
            assert {e.score for e in between} == {entries[0].score}
            assert ids_of(between) == sorted(ids_of(between))
    # and ties are common in the data at large, not only in the planted group
    expected = brute_force(data.window_counters("month"), default_registry().scorer("win_rate"),
                           "all")
    scores = [s for _, _, s, _ in expected]
    assert len(scores) - len(set(scores)) > 10


def test_top_page_edges(session, data):
    total = queries.top(session, "battles", "all", "all").total
    last = queries.top(session, "battles", "all", "all", offset=total - 1, limit=10)
    assert [e.rank for e in last.entries] == [total]
    beyond = queries.top(session, "battles", "all", "all", offset=total + 5)
    assert beyond.entries == [] and beyond.total == total


def test_rematerialising_is_idempotent(db, data):
    engine = engine_for(db)

    def snapshot():
        with engine.connect() as conn:
            rows = conn.execute(text(" UNION ALL ".join(
                f"SELECT '{b}' AS board, '{w}' AS time_window, account_id, rank, "
                f"platform_rank, score, battles, ctid FROM {leaf_name(b, w)}"
                for b in BUILTIN for w in WINDOWS) + " ORDER BY 1, 2, 3")).all()
            builds = conn.execute(text(
                "SELECT board, time_window, as_of, total, total_xbox, total_ps "
                "FROM leaderboard_builds ORDER BY 1, 2")).all()
            tables = conn.execute(text(
                "SELECT count(*) FROM pg_class WHERE relname LIKE 'lbe\\_\\_%'")).scalar()
            activity = conn.execute(text(
                "SELECT date, platform, active_accounts, battles, new_accounts, unique_7d, "
                "unique_30d, unique_90d FROM daily_activity ORDER BY 1, 2")).all()
        return rows, builds, tables, activity

    before = snapshot()
    results = materialise(engine, data.as_of, boards=BUILTIN)
    assert not any(r.skipped for r in results)
    assert snapshot() == before
    # an older date does not roll the boards back unless forced
    older = materialise(engine, data.as_of - dt.timedelta(days=1), boards=BUILTIN,
                        activity=False)
    assert all(r.skipped for r in older)
    assert snapshot() == before


def test_errors_name_what_is_wrong(session, data):
    with pytest.raises(UnknownBoard) as exc:
        queries.top(session, "nope", "day", "all")
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, StatsError)
    assert "nope" in str(exc.value)
    with pytest.raises(UnknownWindow):
        queries.top(session, "battles", "year", "all")
    with pytest.raises(UnknownPlatform):
        queries.rank_of(session, "battles", "day", "pc", 1)
    with pytest.raises(InvalidQuery):
        queries.top(session, "battles", "day", "all", limit=0)
    with pytest.raises(InvalidQuery):
        queries.top(session, "battles", "day", "all", offset=-1)
    with pytest.raises(InvalidQuery):
        queries.around(session, "battles", "day", "all", 1, n=10_000)
    with pytest.raises(UnknownPlayer):
        queries.rank_of(session, "battles", "all", "all", 42)
    with pytest.raises(UnknownPlayer):
        queries.around(session, "battles", "all", "all", 42)
    # ranked on xbox, so absent from the ps view
    xbox = next(a for a, (p, c) in data.players.items() if p == "xbox" and c["battles"])
    with pytest.raises(UnknownPlayer):
        queries.rank_of(session, "battles", "all", "ps", xbox)
    with pytest.raises(UnknownPlayer):
        queries.player_stats(session, 42)


def test_player_ranks_lists_every_board(session, data):
    account = data.tie_group[0]
    ranks = queries.player_ranks(session, account)
    assert list(ranks) == list(BUILTIN)
    assert ranks["battles"] == queries.rank_of(session, "battles", "all", "all", account)


def test_list_boards_has_the_builtins_first():
    boards = queries.list_boards()
    assert [b.name for b in boards][:5] == list(BUILTIN)
    win = next(b for b in boards if b.name == "win_rate")
    assert win.min_battles == 100 and win.unit == "%"
    assert win.windows == WINDOWS and win.platforms == PLATFORMS
