"""Operator and guest logins, sessions that expire, Wargaming sign-in via the simulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from battletracker.db import engine_for
from battletracker.settings import ApiKey, Settings
from battletracker.wargaming.simulator import Population, Simulator, serve
from battletracker.web.app import create_app
from battletracker.web.auth import SESSION_COOKIE
from battletracker.web.server import serve_in_thread

from .conftest import OPERATOR


def _login(c: TestClient, user: str, password: str, next: str = "/") -> httpx.Response:
    return c.post("/login", data={"username": user, "password": password, "next": next},
                  follow_redirects=False)


@pytest.fixture
def fresh(web_settings: Settings) -> Iterator[TestClient]:
    """A client with its own cookie jar (the module client's jar is shared)."""
    with TestClient(create_app(web_settings)) as c:
        yield c


def test_operator_page_needs_a_login(fresh: TestClient) -> None:
    r = fresh.get("/operator", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Foperator&operator=1"


def test_operator_login_works(fresh: TestClient) -> None:
    r = _login(fresh, *OPERATOR, next="/operator")
    assert r.status_code == 303 and r.headers["location"] == "/operator"
    cookie = r.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=" in cookie
    page = fresh.get("/operator")
    assert page.status_code == 200
    for part in ('id="cycles"', 'id="problem-chunks"', 'id="ranges"', 'id="nodes"',
                 "SOURCE_NOT_AVAILABLE", "node-alpha", "operator: alice"):
        assert part in page.text
    r = fresh.post("/logout", follow_redirects=False)
    assert r.status_code == 303
    assert fresh.get("/operator", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(("user", "password"), [
    ("alice", "wrong"), ("alice", ""), ("bob", OPERATOR[1]), ("", OPERATOR[1]),
    ("guest", "guest"),  # the guest login is off by default
])
def test_wrong_credentials_fail(fresh: TestClient, user: str, password: str) -> None:
    r = _login(fresh, user, password, next="/operator")
    assert r.status_code == 401
    assert "set-cookie" not in r.headers
    assert "Wrong user name or password" in r.text
    assert fresh.get("/operator", follow_redirects=False).status_code == 303


def test_forged_session_is_ignored(fresh: TestClient, web_settings: Settings) -> None:
    from battletracker.web.auth import Identity, SessionCodec

    forged = SessionCodec("not-the-secret", max_age=3600).dumps(Identity(operator="alice"))
    fresh.cookies.set(SESSION_COOKIE, forged)
    assert fresh.get("/operator", follow_redirects=False).status_code == 303
    genuine = SessionCodec(web_settings.secret_key, max_age=3600).dumps(
        Identity(operator="alice"))
    fresh.cookies.set(SESSION_COOKIE, genuine)
    assert fresh.get("/operator", follow_redirects=False).status_code == 200


def test_session_expires(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings.replace(session_max_age=1))) as c:
        assert _login(c, *OPERATOR).status_code == 303
        assert c.get("/operator", follow_redirects=False).status_code == 200
        time.sleep(2.2)
        assert c.get("/operator", follow_redirects=False).status_code == 303


def test_next_cannot_leave_the_site(fresh: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil"):
        r = _login(fresh, *OPERATOR, next=target)
        assert r.headers["location"] == "/"


def test_guest_gate(web_settings: Settings) -> None:
    settings = web_settings.replace(guest_login=True, guest_password="shared-secret")
    with TestClient(create_app(settings)) as c:
        r = c.get("/boards", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fboards")
        assert c.get("/api/v1/boards").status_code == 401
        assert c.get("/healthz").status_code == 200  # monitoring stays open
        assert c.get("/metrics").status_code == 200
        assert c.get("/login").status_code == 200
        assert _login(c, "guest", "wrong").status_code == 401
        assert _login(c, "guest", "shared-secret", next="/boards").status_code == 303
        assert c.get("/boards").status_code == 200
        assert c.get("/api/v1/boards").status_code == 200
        # A guest is not an operator.
        r = c.get("/operator", follow_redirects=False)
        assert r.status_code == 303 and "operator=1" in r.headers["location"]
        # An operator passes the guest gate too.
    with TestClient(create_app(settings)) as c:
        assert _login(c, *OPERATOR).status_code == 303
        assert c.get("/").status_code == 200 and c.get("/operator").status_code == 200


def test_public_by_default(client: TestClient) -> None:
    for path in ("/", "/boards", "/boards/win_rate?window=week&platform=ps", "/volunteers",
                 "/api/v1/boards"):
        assert client.get(path, follow_redirects=False).status_code == 200, path


# -- Wargaming sign-in ------------------------------------------------------------------


@pytest.fixture
def signin(web_settings: Settings) -> Iterator[tuple[str, Simulator]]:
    sim = Simulator(Population(seed=3, xbox_ids=2_000, ps_ids=2_000), keys={"webkey": 10.0})
    with serve(sim) as running:
        settings = web_settings.replace(wg_openid_url=running.url + "auth/login/",
                                        wg_keys=(ApiKey("webkey", 10.0),))
        handle = serve_in_thread(settings)
        try:
            yield handle.url, sim
        finally:
            handle.stop()


def test_wargaming_sign_in_shows_my_page(signin: tuple[str, Simulator],
                                         web_settings: Settings) -> None:
    base, sim = signin
    account = sim.signin.chosen_account()
    nickname = sim.population.account(account, sim.day)["nickname"]  # type: ignore[index]
    with engine_for(web_settings).begin() as conn:
        conn.execute(text(
            "INSERT INTO players (account_id, platform, nickname, last_seen, battles, wins, "
            "losses, draws, spotted, frags, damage_dealt, damage_received, "
            "dropped_capture_points, capture_points, xp, hits, shots, survived_battles) "
            "VALUES (:a, 'xbox', :n, '2026-03-14', 10, 5, 5, 0, 1, 2, 3000, 2000, 0, 0, "
            "900, 50, 80, 4) ON CONFLICT DO NOTHING"), {"a": account, "n": nickname})
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as c:
        start = c.get("/auth/wargaming")
        assert start.status_code == 302
        to_wg = urlsplit(start.headers["location"])
        query = parse_qs(to_wg.query)
        assert query["application_id"] == ["webkey"]
        assert query["redirect_uri"] == [f"{base}/auth/wargaming/callback"]
        back = c.get(start.headers["location"])  # the simulator: 302 back to us
        assert back.status_code == 302
        assert back.headers["location"].startswith(f"{base}/auth/wargaming/callback?")
        done = c.get(back.headers["location"])
        assert done.status_code == 303 and done.headers["location"] == "/me"
        me = c.get("/me")
        assert me.status_code == 200
        assert nickname in me.text and "This is you" in me.text


@pytest.mark.parametrize("query", [
    "status=error&code=401&message=AUTH_CANCEL",
    "status=ok&access_token=t&nickname=N&account_id=abc&expires_at=9999999999",
    "status=ok&access_token=t&nickname=N&account_id=-5&expires_at=9999999999",
    "status=ok&access_token=t&nickname=N&account_id=99999999999999999999&expires_at=9999999999",
    "status=ok&access_token=&nickname=N&account_id=5000&expires_at=9999999999",
    "status=ok&access_token=t&nickname=N&account_id=5000&expires_at=1",
    "status=ok&access_token=t&nickname=N&account_id=5000",
])
def test_bad_callbacks_are_rejected(signin: tuple[str, Simulator], query: str) -> None:
    base, _ = signin
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as c:
        c.get("/auth/wargaming")  # a flow was started in this browser
        r = c.get(f"/auth/wargaming/callback?{query}")
        assert r.status_code == 400
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
        assert c.get("/me").status_code == 303


def test_callback_without_a_started_flow_is_rejected(signin: tuple[str, Simulator]) -> None:
    base, _ = signin
    good = "status=ok&access_token=t&nickname=N&account_id=5000&expires_at=9999999999"
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as c:
        assert c.get(f"/auth/wargaming/callback?{good}").status_code == 400
        c.get("/auth/wargaming")
        assert c.get(f"/auth/wargaming/callback?{good}").status_code == 303
