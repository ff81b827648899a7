"""The page cache: hits are the app's own answers, hardened alike, and never outlive the
swap of their board by more than the documented check interval."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from battletracker.db import engine_for
from battletracker.settings import Settings
from battletracker.stats.bench import AS_OF, generate
from battletracker.stats.materialise import materialise
from battletracker.testing.databases import temporary_database
from battletracker.web.app import create_app
from battletracker.web.auth import SESSION_COOKIE
from battletracker.web.pagecache import CHECK_SECONDS, PageCache, cache_key
from battletracker.web.secret import new_secret_key

BOARD = "/api/v1/boards/battles?window=all&platform=all&offset=0&limit=10"


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    with temporary_database(Settings(secret_key=new_secret_key())) as s:
        engine = engine_for(s)
        with engine.begin() as conn:
            generate(conn, players=400, days=3, active=0.5)
        materialise(engine, AS_OF, boards=["battles"], activity=False)
        yield s


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=True) as c:
        yield c


def _cache(client: TestClient) -> PageCache:
    cache: PageCache = client.app.state.page_cache  # type: ignore[attr-defined]
    return cache


def _last(settings: Settings) -> int:
    with engine_for(settings).connect() as conn:
        return int(conn.execute(text(
            "SELECT account_id FROM lbe__battles__all ORDER BY rank DESC LIMIT 1")).scalar_one())


def _promote_and_rebuild(settings: Settings, account_id: int) -> None:
    """Make ``account_id`` the top of the battles board, and swap the new board in."""
    engine = engine_for(settings)
    with engine.begin() as conn:
        conn.execute(text("UPDATE players SET battles = battles + 10000000 "
                          "WHERE account_id = :a"), {"a": account_id})
    materialise(engine, AS_OF, boards=["battles"], windows=["all"], activity=False,
                force=True)


def test_a_hit_is_the_same_answer_with_the_same_security_headers(client: TestClient) -> None:
    first = client.get(BOARD)
    again = client.get(BOARD)
    assert first.status_code == again.status_code == 200
    assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
    assert again.content == first.content
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options",
                 "content-type"):
        assert again.headers[name] == first.headers[name]
    # what a CDN needs to keep it, for as long as this process would
    assert again.headers["cache-control"] == f"public, max-age={int(CHECK_SECONDS)}"
    assert again.headers["vary"] == "Cookie"
    assert again.headers["etag"] == first.headers["etag"]
    unchanged = client.get(BOARD, headers={"if-none-match": again.headers["etag"]})
    assert unchanged.status_code == 304 and unchanged.content == b""
    changed = client.get(BOARD, headers={"if-none-match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == first.content


def test_the_query_is_normalised_but_a_repeated_parameter_is_never_cached(
        client: TestClient) -> None:
    client.get("/api/v1/boards/battles?window=week&platform=xbox")
    swapped = client.get("/api/v1/boards/battles?platform=xbox&window=week")
    assert swapped.headers["x-cache"] == "hit"
    twice = client.get("/api/v1/boards/battles?window=week&window=all")
    assert twice.status_code == 200 and "x-cache" not in twice.headers
    assert cache_key({"type": "http", "method": "POST", "path": "/api/v1/boards/battles",
                      "headers": [], "query_string": b""}) is None


def test_validation_errors_still_come_from_the_app_and_are_not_kept(client: TestClient) -> None:
    for _ in range(2):
        r = client.get("/api/v1/boards/battles?window=year")
        assert r.status_code == 422 and "x-cache" not in r.headers


def test_visitors_with_a_session_and_the_guest_gate_bypass_it(
        client: TestClient, settings: Settings) -> None:
    client.get(BOARD)
    cookie = client.get(BOARD, headers={"cookie": f"{SESSION_COOKIE}=forged"})
    assert cookie.status_code == 200 and "x-cache" not in cookie.headers
    gated = settings.replace(guest_login=True, guest_password="shared-secret")
    with TestClient(create_app(gated)) as c:
        for _ in range(2):
            r = c.get(BOARD)
            assert r.status_code == 401 and "x-cache" not in r.headers


def test_a_new_board_build_shows_within_the_check_interval(
        client: TestClient, settings: Settings) -> None:
    account = _last(settings)
    rank = f"/api/v1/boards/battles/rank/{account}?window=all&platform=all"
    page = "/boards/battles?window=all&platform=all"
    before = client.get(rank).json()["rank"]
    assert before > 1
    assert client.get(BOARD).json()["entries"][0]["account_id"] != account
    html_before = client.get(page).text
    cache = _cache(client)
    cache.check_seconds = 3600.0  # no check during the rebuild: the old pages stay
    _promote_and_rebuild(settings, account)
    stale = client.get(rank)
    assert stale.headers["x-cache"] == "hit" and stale.json()["rank"] == before
    cache.check_seconds = 0.2  # the next check is due, and overdue twice over:
    time.sleep(0.45)
    assert client.get(rank).json()["rank"] == 1  # ... the request waited for it
    top = client.get(BOARD)
    assert top.headers["x-cache"] == "miss" and top.json()["entries"][0]["account_id"] == account
    assert client.get(page).text != html_before


def test_a_due_check_runs_in_the_background_and_is_seen_within_the_interval(
        client: TestClient, settings: Settings) -> None:
    account = _last(settings)
    rank = f"/api/v1/boards/battles/rank/{account}?window=all&platform=all"
    assert client.get(rank).json()["rank"] > 1
    cache = _cache(client)
    cache.check_seconds = 1.0
    _promote_and_rebuild(settings, account)
    swapped = time.monotonic()
    while client.get(rank).json()["rank"] != 1:
        assert time.monotonic() - swapped < 2 * cache.check_seconds + 0.5, "stale too long"
        time.sleep(0.05)
