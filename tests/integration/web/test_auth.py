"""Operator and guest logins, sessions that expire, Wargaming sign-in via the simulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from battletracker.db import engine_for
from battletracker.settings import ApiKey, Settings
from battletracker.wargaming.simulator import Population, Simulator, serve
from battletracker.web.app import create_app
from battletracker.web.auth import SESSION_COOKIE, hash_password
from battletracker.web.server import serve_in_thread

from .conftest import METRICS_AUTH, OPERATOR


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


def test_forged_operator_cookie_is_refused(fresh: TestClient, web_settings: Settings) -> None:
    """The issue's attack: a cookie signed with the old default key, and one signed with the
    real key but holding no server-side session, both get nothing."""
    from itsdangerous import URLSafeTimedSerializer

    for key in ("change-me", web_settings.secret_key):
        forged = URLSafeTimedSerializer(key, salt="battletracker.session")
        for payload in ({"operator": "mallory"}, {"operator": "alice"}, "x" * 43):
            fresh.cookies.set(SESSION_COOKIE, forged.dumps(payload))
            assert fresh.get("/operator", follow_redirects=False).status_code == 303
    fresh.cookies.clear()
    assert _login(fresh, *OPERATOR).status_code == 303
    assert fresh.get("/operator", follow_redirects=False).status_code == 200


def test_logged_out_cookie_is_refused(fresh: TestClient) -> None:
    assert _login(fresh, *OPERATOR).status_code == 303
    kept = fresh.cookies.get(SESSION_COOKIE)
    assert fresh.get("/operator", follow_redirects=False).status_code == 200
    assert fresh.post("/logout", follow_redirects=False).status_code == 303
    fresh.cookies.set(SESSION_COOKIE, kept)  # a copy of the cookie, replayed
    assert fresh.get("/operator", follow_redirects=False).status_code == 303


def test_removed_operator_session_is_refused(web_settings: Settings) -> None:
    """Sessions are checked against the operator list on every request: an app started
    without bob (or with his password changed) refuses bob's cookie, keeps alice's."""
    bob = ("bob", "bob's pass phrase")
    both = web_settings.replace(operators=(*web_settings.operators,
                                           (bob[0], hash_password(bob[1], iterations=1_000))))
    with TestClient(create_app(both)) as a, TestClient(create_app(both)) as b:
        assert _login(a, *OPERATOR).status_code == 303
        assert _login(b, *bob).status_code == 303
        alice_cookie, bob_cookie = a.cookies[SESSION_COOKIE], b.cookies[SESSION_COOKIE]
        assert b.get("/operator", follow_redirects=False).status_code == 200
    new_password = both.replace(operators=(
        *web_settings.operators, (bob[0], hash_password("new pass", iterations=1_000))))
    for changed in (web_settings, new_password):  # bob removed; bob's password changed
        with TestClient(create_app(changed)) as c:
            c.cookies.set(SESSION_COOKIE, bob_cookie)
            assert c.get("/operator", follow_redirects=False).status_code == 303
            assert "operator: bob" not in c.get("/").text
            c.cookies.set(SESSION_COOKIE, alice_cookie)
            assert c.get("/operator", follow_redirects=False).status_code == 200


def test_login_rotates_the_session(fresh: TestClient) -> None:
    """A token planted before the login (session fixation) is ended by the login."""
    assert _login(fresh, *OPERATOR).status_code == 303
    first = fresh.cookies[SESSION_COOKIE]
    assert _login(fresh, *OPERATOR).status_code == 303
    second = fresh.cookies[SESSION_COOKIE]
    assert first != second
    fresh.cookies.set(SESSION_COOKIE, first)
    assert fresh.get("/operator", follow_redirects=False).status_code == 303


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
        assert c.get("/metrics", headers=METRICS_AUTH).status_code == 200
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
# The sign-in has its own application id; the crawl key "crawlkey" must never show.


@dataclass
class SignInRig:
    base: str  # the web app
    sim: Simulator
    sim_url: str


@pytest.fixture
def signin(web_settings: Settings) -> Iterator[SignInRig]:
    sim = Simulator(Population(seed=3, xbox_ids=2_000, ps_ids=2_000),
                    keys={"crawlkey": 10.0, "signinapp": 50.0})
    with serve(sim) as running:
        settings = web_settings.replace(wg_openid_url=running.url + "auth/login/",
                                        wg_api_url=running.url,
                                        wg_keys=(ApiKey("crawlkey", 10.0),),
                                        wg_signin_app_id="signinapp")
        handle = serve_in_thread(settings)
        try:
            yield SignInRig(handle.url, sim, running.url)
        finally:
            handle.stop()


def _add_player(settings: Settings, account: int, nickname: str) -> None:
    with engine_for(settings).begin() as conn:
        conn.execute(text(
            "INSERT INTO players (account_id, platform, nickname, last_seen, battles, wins, "
            "losses, draws, spotted, frags, damage_dealt, damage_received, "
            "dropped_capture_points, capture_points, xp, hits, shots, survived_battles) "
            "VALUES (:a, 'xbox', :n, '2026-03-14', 10, 5, 5, 0, 1, 2, 3000, 2000, 0, 0, "
            "900, 50, 80, 4) ON CONFLICT DO NOTHING"), {"a": account, "n": nickname})


def _wargaming_answer(c: httpx.Client, base: str) -> str:
    """Start a flow and let the simulator answer: the callback URL it sends back."""
    start = c.get("/auth/wargaming")
    assert start.status_code == 302
    back = c.get(start.headers["location"])
    assert back.status_code == 302
    assert back.headers["location"].startswith(f"{base}/auth/wargaming/callback?")
    return str(back.headers["location"])


def _replace(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


def test_wargaming_sign_in_shows_my_page(signin: SignInRig, web_settings: Settings) -> None:
    base, sim = signin.base, signin.sim
    account = sim.signin.chosen_account()
    nickname = sim.population.account(account, sim.day)["nickname"]  # type: ignore[index]
    _add_player(web_settings, account, nickname)
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as c:
        start = c.get("/auth/wargaming")
        assert start.status_code == 302
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert query["application_id"] == ["signinapp"]  # never the crawl key
        assert "crawlkey" not in start.headers["location"]
        callback = urlsplit(query["redirect_uri"][0])
        assert f"{callback.scheme}://{callback.netloc}{callback.path}" == (
            f"{base}/auth/wargaming/callback")
        assert len(parse_qs(callback.query)["state"][0]) >= 32  # the nonce
        back = c.get(start.headers["location"])  # the simulator: 302 back to us
        # the nickname in the URL is not believed: the API's is shown
        done = c.get(_replace(back.headers["location"], nickname="<b>Impostor</b>"))
        assert done.status_code == 303 and done.headers["location"] == "/me"
        me = c.get("/me")
        assert me.status_code == 200
        assert nickname in me.text and "This is you" in me.text and "Impostor" not in me.text
    assert "crawlkey" not in sim.stats()["by_key"]  # the check used the sign-in app id


NOT_CONFIRMED = "did not confirm"
NOT_STARTED = "not started here"


@pytest.mark.parametrize(("changes", "reason"), [
    # the example: a made-up token (with the attacker's own, genuine state)
    ({"access_token": "x"}, NOT_CONFIRMED),
    ({"access_token": "0123456789abcdef0123456789abcdef01234567"}, NOT_CONFIRMED),
    ({"access_token": ""}, NOT_CONFIRMED),
    # a genuine token, claimed for another account
    ({"account_id": "VICTIM"}, NOT_CONFIRMED),
    ({"state": "not-the-nonce"}, NOT_STARTED),
    ({"state": ""}, NOT_STARTED),
    ({"status": "error", "message": "AUTH_CANCEL"}, "AUTH_CANCEL"),
    ({"account_id": "abc"}, "valid account id"),
    ({"account_id": "-5"}, "valid account id"),
    ({"account_id": "99999999999999999999"}, "valid account id"),
])
def test_forged_sign_in_callbacks_are_refused(signin: SignInRig, changes: dict[str, str],
                                               reason: str) -> None:
    base, sim = signin.base, signin.sim
    victim = sim.signin.chosen_account() + 1
    while sim.population.account(victim, sim.day) is None:
        victim += 1
    changes = {k: str(victim) if v == "VICTIM" else v for k, v in changes.items()}
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as c:
        r = c.get(_replace(_wargaming_answer(c, base), **changes))
        assert r.status_code == 400 and reason in r.text
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
        assert c.get("/me").status_code == 303
        assert c.get("/operator", follow_redirects=False).status_code == 303


def test_sign_in_answer_is_bound_to_the_browser_that_started_it(signin: SignInRig) -> None:
    """A genuine answer replayed in another browser (no flow, or another nonce) is refused:
    nobody can sign a victim in as someone else."""
    with httpx.Client(base_url=signin.base, follow_redirects=False, timeout=10) as c:
        genuine = _wargaming_answer(c, signin.base)
    with httpx.Client(base_url=signin.base, follow_redirects=False, timeout=10) as victim:
        assert NOT_STARTED in victim.get(genuine).text
        victim.get("/auth/wargaming")  # the victim's own flow: another nonce
        r = victim.get(genuine)
        assert r.status_code == 400 and NOT_STARTED in r.text
        assert victim.get("/me").status_code == 303


def test_token_of_another_application_is_refused(signin: SignInRig) -> None:
    """A token the API issued to another application id proves nothing to ours."""
    other = httpx.get(f"{signin.sim_url}auth/login/", params={
        "application_id": "crawlkey", "redirect_uri": "http://elsewhere.example/cb"},
        follow_redirects=False)
    foreign = dict(httpx.URL(other.headers["location"]).params)
    with httpx.Client(base_url=signin.base, follow_redirects=False, timeout=10) as c:
        r = c.get(_replace(_wargaming_answer(c, signin.base),
                           access_token=foreign["access_token"],
                           account_id=foreign["account_id"]))
        assert r.status_code == 400 and NOT_CONFIRMED in r.text
        assert c.get("/me").status_code == 303


def test_sign_in_off_without_its_application_id(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings.replace(wg_keys=(ApiKey("crawlkey", 10.0),)))) as c:
        r = c.get("/auth/wargaming", follow_redirects=False)
        assert r.status_code == 503 and "wg_signin_app_id" in r.text
        assert "crawlkey" not in r.text
