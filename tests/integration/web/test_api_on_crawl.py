"""The JSON API on data a real crawl produced: eight simulated nights through the pipeline.

The other web tests use a hand-written dataset; here the pipeline's own stages
(``run_cycle`` against the simulator, then the stats step) fill the database, and the
API's answers are checked against the simulator's truth and a brute-force ranking.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from battletracker.db import engine_for
from battletracker.models import COUNTERS
from battletracker.pipeline.local import run_cycle
from battletracker.settings import ApiKey, IdRange, Settings
from battletracker.stats.interfaces import min_battles_in
from battletracker.stats.materialise import materialise
from battletracker.stats.registry import default_registry
from battletracker.testing.databases import temporary_database
from battletracker.wargaming.simulator import BASE_URL, PS_MIN, XBOX_MIN, Population, Simulator
from battletracker.web.app import create_app
from battletracker.web.secret import new_secret_key

pytestmark = pytest.mark.integration

NIGHTS = 8
IDS, NEW = 1200, 60
BOARDS = ("battles", "win_rate", "avg_damage", "frags_per_battle", "survival_rate")
WINDOW_DAYS = {"day": 1, "week": 7, "month": 30}


@pytest.fixture(scope="module")
def crawl() -> Iterator[dict[str, Any]]:
    pop = Population(seed=21, xbox_ids=IDS, ps_ids=IDS, new_per_day=NEW, active_share=0.5)
    sim = Simulator(pop, keys={"k": 1000.0})
    span = IDS + NEW * (NIGHTS + 2)
    base = Settings(
        wg_api_url=BASE_URL, wg_keys=(ApiKey("k", 1000.0),), chunk_size=500,
        xbox_range=IdRange(XBOX_MIN, XBOX_MIN + span), ps_range=IdRange(PS_MIN, PS_MIN + span),
        secret_key=new_secret_key(),
    )  # fmt: skip
    with temporary_database(base) as settings:
        for night in range(1, NIGHTS + 1):
            sim.day = night
            day = pop.date_of(night)
            stats_step = lambda _cid, d=day: materialise(engine_for(settings), d)  # noqa: E731
            run_cycle(settings, day, transport=sim.transport(), after_diffs=stats_step)
        with TestClient(create_app(settings)) as client:
            yield {"pop": pop, "settings": settings, "client": client,
                   "last": pop.date_of(NIGHTS)}  # fmt: skip


def _window_counters(settings: Settings, window: str, as_of: dt.date) -> dict[int, Any]:
    """account -> (platform, counters) summed over the window, straight from the tables."""
    with engine_for(settings).connect() as conn:
        if window == "all":
            rows = conn.execute(text(f"SELECT account_id, platform, {', '.join(COUNTERS)} "
                                     "FROM players")).all()  # fmt: skip
        else:
            first = as_of - dt.timedelta(days=WINDOW_DAYS[window] - 1)
            rows = conn.execute(
                text(f"SELECT account_id, min(platform), "
                     f"{', '.join(f'sum({c})' for c in COUNTERS)} FROM diff_battles "
                     "WHERE date BETWEEN :a AND :b GROUP BY account_id"),
                {"a": first, "b": as_of},
            ).all()  # fmt: skip
    return {r[0]: (r[1], dict(zip(COUNTERS, map(int, r[2:]), strict=True))) for r in rows}


def _expected(crawl: dict[str, Any], board: str, window: str, platform: str) -> list[Any]:
    scorer = default_registry().scorer(board)
    scored = []
    for aid, (plat, counters) in _window_counters(crawl["settings"], window, crawl["last"]).items():
        if platform in ("all", plat) and counters["battles"] >= min_battles_in(scorer, window):
            s = scorer.score(counters)
            if s is not None and math.isfinite(s):
                scored.append((aid, s))
    return sorted(scored, key=lambda x: (-x[1], x[0]))


def _pages(client: TestClient, board: str, window: str, platform: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while True:
        r = client.get(f"/api/v1/boards/{board}", params={
            "window": window, "platform": platform, "offset": len(entries), "limit": 200})
        assert r.status_code == 200, r.text
        page = r.json()["entries"]
        entries += page
        if len(page) < 200:
            return entries


@pytest.mark.parametrize("board", BOARDS)
def test_boards_match_a_brute_force_ranking(crawl: dict[str, Any], board: str) -> None:
    client = crawl["client"]
    for window in ("day", "week", "month", "all"):
        for platform in ("all", "xbox", "ps"):
            expected = _expected(crawl, board, window, platform)
            entries = _pages(client, board, window, platform)
            assert [e["account_id"] for e in entries] == [a for a, _ in expected]
            assert [e["rank"] for e in entries] == list(range(1, len(expected) + 1))
            for e, (_, score) in zip(entries, expected, strict=True):
                assert e["score"] == pytest.approx(score, rel=1e-12)
            if entries:  # rank and around agree with the full list
                mid = entries[len(entries) // 2]
                r = client.get(f"/api/v1/boards/{board}/rank/{mid['account_id']}",
                               params={"window": window, "platform": platform})  # fmt: skip
                assert r.json()["rank"] == mid["rank"]
                r = client.get(f"/api/v1/boards/{board}/around/{mid['account_id']}",
                               params={"window": window, "platform": platform, "n": 3})  # fmt: skip
                i = mid["rank"] - 1
                want = [e["account_id"] for e in entries[max(0, i - 3): i + 4]]
                assert [e["account_id"] for e in r.json()] == want


def test_player_counters_and_history_equal_the_truth(crawl: dict[str, Any]) -> None:
    pop, client = crawl["pop"], crawl["client"]
    players = [i for i, _ in pop.truth(NIGHTS)][::97]
    for aid in players:
        body = client.get(f"/api/v1/players/{aid}").json()
        truth = pop.account(aid, NIGHTS)["statistics"]["all"]
        assert {c: body["counters"][c] for c in COUNTERS} == truth
        history = client.get(f"/api/v1/players/{aid}/history", params={"days": 30}).json()
        played = {h["date"]: h["battles"] for h in history if h["battles"]}
        want = {}
        for night in range(2, NIGHTS + 1):
            before, after = pop.account(aid, night - 1), pop.account(aid, night)
            if after is None:  # created on a later night
                continue
            gained = after["statistics"]["all"]["battles"] - (
                before["statistics"]["all"]["battles"] if before else 0)  # fmt: skip
            if gained:
                want[pop.date_of(night).isoformat()] = gained
        assert {d: b for d, b in played.items() if d != pop.date_of(1).isoformat()} == want


def test_activity_counts_the_accounts_that_played(crawl: dict[str, Any]) -> None:
    pop, client = crawl["pop"], crawl["client"]
    rows = client.get("/api/v1/activity", params={"days": 30}).json()
    got = {(r["date"], r["platform"]): r for r in rows}
    for night in range(2, NIGHTS + 1):
        for platform in ("xbox", "ps"):
            active = battles = 0
            for aid, acc in pop.truth(night):
                if ("xbox" if aid < PS_MIN else "ps") != platform:
                    continue
                before = pop.account(aid, night - 1)
                gained = acc["statistics"]["all"]["battles"] - (
                    before["statistics"]["all"]["battles"] if before else 0)  # fmt: skip
                active += gained > 0
                battles += gained
            row = got[(pop.date_of(night).isoformat(), platform)]
            assert (row["active_accounts"], row["battles"]) == (active, battles)
