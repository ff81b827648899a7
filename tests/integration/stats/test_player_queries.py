"""player_stats, player_history and activity against the inserted data."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from battletracker.db import engine_for
from battletracker.models import COUNTERS
from battletracker.stats import queries
from battletracker.stats.activity import materialise_activity
from battletracker.stats.builtin import AverageStats, RateStats
from battletracker.stats.interfaces import InvalidQuery, UnknownPlatform, UnknownPlayer

from .data import build, insert

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data():
    return build(seed=11, n_players=200)


@pytest.fixture(scope="module")
def engine(module_db_settings, data):
    engine = engine_for(module_db_settings)
    with engine.begin() as conn:
        insert(conn, data)
        conn.execute(text("INSERT INTO cycles (id, date, status, chunks_total, chunks_stored, "
                          "ids_total, accounts, rejected_results, notes) VALUES "
                          "(1, :d, 'done', 0, 0, 0, 0, 0, '{}')"), {"d": data.as_of})
        day = data.as_of - dt.timedelta(days=20)
        while day <= data.as_of:
            materialise_activity(conn, day)
            day += dt.timedelta(days=1)
    return engine


def test_player_stats_runs_every_handler(engine, data):
    account = data.tie_group[0]
    with Session(engine) as session:
        stats = queries.player_stats(session, account)
    platform, counters = data.players[account]
    assert stats.counters == counters and stats.platform == platform
    assert stats.nickname == f"nick{account}"
    assert stats.stats == {"rates": RateStats().stats(counters),
                           "averages": AverageStats().stats(counters)}
    assert stats.stats["rates"]["win_rate"] == counters["wins"] / counters["battles"] * 100


def test_player_history_lists_the_changed_days(engine, data):
    account = data.tie_group[0]
    with Session(engine) as session:
        rows = queries.player_history(session, account, days=30)
        short = queries.player_history(session, account, days=1)
    first = data.as_of - dt.timedelta(days=29)
    want = sorted((d, c) for (a, d), (_, c) in data.diffs.items()
                  if a == account and first <= d <= data.as_of)
    assert [(r.date, r.diffs) for r in rows] == want
    assert all(r.battles == r.diffs["battles"] for r in rows)
    totals = [r.total_battles for r in rows]
    assert totals == sorted(totals)  # a running total
    assert [r.date for r in short] == [data.as_of]
    with Session(engine) as session, pytest.raises(UnknownPlayer):
        queries.player_history(session, 42)
    with Session(engine) as session, pytest.raises(InvalidQuery):
        queries.player_history(session, account, days=0)


def test_activity_matches_a_recount(engine, data):
    with Session(engine) as session:
        rows = queries.activity(session, days=10)
        xbox = queries.activity(session, days=10, platform="xbox")
        with pytest.raises(UnknownPlatform):
            queries.activity(session, platform="pc")
    dates = sorted({r.date for r in rows})
    assert dates == [data.as_of - dt.timedelta(days=i) for i in range(9, -1, -1)]
    assert [r.platform for r in rows[:2]] == ["xbox", "ps"]
    assert xbox == [r for r in rows if r.platform == "xbox"]
    active: dict[tuple[dt.date, str], set[int]] = defaultdict(set)
    battles: dict[tuple[dt.date, str], int] = defaultdict(int)
    for (a, d), (p, c) in data.diffs.items():
        if c["battles"] > 0:
            active[d, p].add(a)
            battles[d, p] += c["battles"]
    for r in rows:
        key = (r.date, r.platform)
        assert r.active_accounts == len(active[key])
        assert r.battles == battles[key]
        if r.active_accounts:
            assert r.avg_battles_per_active == r.battles / r.active_accounts
        for n, got in ((7, r.unique_7d), (30, r.unique_30d), (90, r.unique_90d)):
            seen = set()
            for i in range(n):
                seen |= active[r.date - dt.timedelta(days=i), r.platform]
            assert got == len(seen), (r, n)
        start = int(dt.datetime.combine(r.date, dt.time(), dt.UTC).timestamp())
        created = sum(1 for a, t in data.created.items()
                      if data.players[a][0] == r.platform and start <= t < start + 86_400)
        assert r.new_accounts == created
    assert sum(r.new_accounts for r in rows) > 0
    assert set(COUNTERS) >= {"battles"}
