"""Leaderboard API on a simulated multi-day crawl: answers equal a brute-force ranking."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from battletracker.stats.interfaces import min_battles_in
from battletracker.stats.registry import default_registry

from .dataset import LAST_DAY, Dataset

WINDOWS = ("day", "week", "month", "all")
PLATFORMS = ("all", "xbox", "ps")
BOARDS = ("battles", "win_rate", "avg_damage", "frags_per_battle", "survival_rate")


def brute_force(data: Dataset, board: str, window: str, platform: str) -> list[tuple[int, float]]:
    """(account_id, score) best first, ties by account id: the ranking rule, in Python."""
    scorer = default_registry().scorer(board)
    scored = []
    for aid, counters in data.window_counters(window).items():
        if platform != "all" and data.platform[aid] != platform:
            continue
        if counters.get("battles", 0) < min_battles_in(scorer, window):
            continue
        score = scorer.score(counters)
        if score is not None and math.isfinite(score):
            scored.append((aid, score))
    return sorted(scored, key=lambda s: (-s[1], s[0]))


def all_pages(client: TestClient, board: str, window: str, platform: str,
              limit: int) -> tuple[list[dict[str, Any]], int]:
    entries: list[dict[str, Any]] = []
    offset, total = 0, None
    while True:
        r = client.get(f"/api/v1/boards/{board}", params={
            "window": window, "platform": platform, "offset": offset, "limit": limit})
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["offset"] == offset and page["limit"] == limit
        assert page["as_of"] == LAST_DAY.isoformat()
        total = page["total"] if total is None else total
        assert page["total"] == total  # the same build on every page
        entries += page["entries"]
        if len(page["entries"]) < limit:
            return entries, total
        offset += limit


def test_board_list(client: TestClient) -> None:
    r = client.get("/api/v1/boards")
    assert r.status_code == 200
    names = [b["name"] for b in r.json()]
    assert names[: len(BOARDS)] == list(BOARDS)
    assert all(b["windows"] == list(WINDOWS) for b in r.json())


@pytest.mark.parametrize("board", BOARDS)
def test_pages_are_complete_and_match_brute_force(client: TestClient, data: Dataset,
                                                  board: str) -> None:
    for window in WINDOWS:
        for platform in PLATFORMS:
            expected = brute_force(data, board, window, platform)
            entries, total = all_pages(client, board, window, platform, limit=37)
            assert total == len(expected) == len(entries), (window, platform)
            ids = [e["account_id"] for e in entries]
            assert len(set(ids)) == len(ids)  # no duplicates across pages
            assert [e["rank"] for e in entries] == list(range(1, total + 1))
            assert ids == [aid for aid, _ in expected], (window, platform)
            for e, (_, score) in zip(entries, expected, strict=True):
                assert e["score"] == pytest.approx(score, rel=1e-12)
                assert platform == "all" or e["platform"] == platform
            assert total > (20 if window != "day" or board == "battles" else 0)


def test_ties_are_stable(client: TestClient, data: Dataset) -> None:
    """Players with identical counters rank next to each other, lower id first."""
    assert data.tied
    for a, b in data.tied:
        ra = client.get(f"/api/v1/boards/battles/rank/{a}").json()
        rb = client.get(f"/api/v1/boards/battles/rank/{b}").json()
        assert ra["score"] == rb["score"]
        assert rb["rank"] == ra["rank"] + 1 and a < b


@pytest.mark.parametrize(("board", "window", "platform"),
                         [("battles", "all", "all"), ("win_rate", "month", "xbox"),
                          ("avg_damage", "day", "ps"), ("survival_rate", "week", "all")])
def test_rank_and_around_agree_with_the_full_list(client: TestClient, data: Dataset,
                                                  board: str, window: str,
                                                  platform: str) -> None:
    full, total = all_pages(client, board, window, platform, limit=200)
    params = {"window": window, "platform": platform}
    picks = {0, 1, total // 2, total - 2, total - 1}
    for i in sorted(picks):
        aid = full[i]["account_id"]
        r = client.get(f"/api/v1/boards/{board}/rank/{aid}", params=params)
        assert r.status_code == 200 and r.json() == full[i]
        for n in (0, 3):
            r = client.get(f"/api/v1/boards/{board}/around/{aid}", params={**params, "n": n})
            assert r.status_code == 200
            assert r.json() == full[max(i - n, 0): i + n + 1]


def test_unranked_player_is_404(client: TestClient, data: Dataset) -> None:
    ranked = {aid for aid, _ in brute_force(data, "win_rate", "day", "all")}
    unranked = next(aid for aid in data.current if aid not in ranked)
    for path in (f"/api/v1/boards/win_rate/rank/{unranked}",
                 f"/api/v1/boards/win_rate/around/{unranked}"):
        r = client.get(path, params={"window": "day"})
        assert r.status_code == 404
        assert str(unranked) in r.json()["detail"]


def test_the_window_minimum_of_battles_is_shown_by_the_api_and_the_page(
        client: TestClient, data: Dataset) -> None:
    boards = {b["name"]: b for b in client.get("/api/v1/boards").json()}
    assert boards["avg_damage"]["min_battles_by_window"] == {
        "day": 10, "week": 25, "month": 100, "all": 100}
    assert boards["battles"]["min_battles_by_window"] == {w: 1 for w in WINDOWS}
    page = client.get("/boards/avg_damage", params={"window": "month"})
    assert page.status_code == 200
    assert "ranked from 100 battles in this window" in page.text
    # ranked on the average boards by the day's rule (10), not by the all-time one (100)
    unranked = [a for a, c in data.window_counters("all").items() if 10 <= c["battles"] < 100]
    player = client.get(f"/players/{unranked[0]}")
    assert player.status_code == 200
    assert player.text.count("needs 100 battles") == 4  # win rate and the three averages
