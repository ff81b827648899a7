"""Bursts of logins: refused without hashing past the limits, and never stalling pages.

The password checks here are real PBKDF2 at a cost that makes each take a noticeable
while, so that "the page was answered while checks were still running" is a matter of
order, not of timing.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from battletracker.settings import Settings
from battletracker.web.app import create_app
from battletracker.web.auth import hash_password

#: Slow enough that a queue of checks lasts seconds on any machine.
ITERATIONS = 400_000
ALICE = ("alice", "correct horse battery staple")


@pytest.fixture(scope="module")
def burst_settings(web_settings: Settings) -> Settings:
    return web_settings.replace(
        operators=((ALICE[0], hash_password(ALICE[1], iterations=ITERATIONS)),),
        web_trusted_proxies="127.0.0.1",  # the test sets each request's address
        login_failures_per_account=5, login_failures_per_address=20)


def _client(settings: Settings) -> tuple[httpx.AsyncClient, object]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver"), app


async def _login(c: httpx.AsyncClient, user: str, password: str, address: str) -> httpx.Response:
    return await c.post("/login", data={"username": user, "password": password},
                        headers={"x-forwarded-for": address})


def test_a_burst_against_one_account_is_refused(burst_settings: Settings) -> None:
    async def run() -> None:
        c, app = _client(burst_settings)
        checker = app.state.bt.passwords  # type: ignore[attr-defined]
        async with c:
            burst = [asyncio.create_task(_login(c, "alice", f"guess {i}", "203.0.113.5"))
                     for i in range(30)]
            page = await c.get("/boards")  # a visitor meanwhile
            still_running = sum(not t.done() for t in burst)
            answers = await asyncio.gather(*burst)
            statuses = sorted(r.status_code for r in answers)
            assert page.status_code == 200 and still_running > 0
            assert statuses.count(401) == 5 and statuses.count(429) == 25, statuses
            assert checker.checked == 5  # refused attempts cost no hashing
            locked = next(r for r in answers if r.status_code == 429)
            assert int(locked.headers["retry-after"]) > 0
            assert "Too many failed logins" in locked.text
            # the account stays locked, whatever the address, even with the right password
            r = await _login(c, *ALICE, "198.51.100.77")
            assert r.status_code == 429 and "set-cookie" not in r.headers
            assert checker.checked == 5
            # other accounts are not locked
            assert (await _login(c, "bob", "x", "198.51.100.78")).status_code == 401

    asyncio.run(run())


def test_a_spray_over_addresses_and_names_keeps_the_hash_queue_bounded(
        burst_settings: Settings) -> None:
    """Many addresses, many names: the throttle sees each once, so the password checker's
    bounded queue is what holds: extra logins are told to come back (503) at once."""
    async def run() -> None:
        c, app = _client(burst_settings)
        checker = app.state.bt.passwords  # type: ignore[attr-defined]
        limit = checker._limit
        async with c:
            spray = [asyncio.create_task(_login(c, f"user{i}", "pw", f"198.51.100.{i}"))
                     for i in range(40)]
            await asyncio.sleep(0)
            health = await c.get("/healthz")
            page = await c.get("/")
            still_running = sum(not t.done() for t in spray)
            answers = await asyncio.gather(*spray)
        statuses = [r.status_code for r in answers]
        assert health.status_code == 200 and page.status_code == 200
        assert still_running > 0  # pages were answered while checks were still queued
        assert checker.peak <= limit
        assert statuses.count(503) >= 40 - limit and statuses.count(401) <= limit
        assert set(statuses) <= {401, 503}
        busy = next(r for r in answers if r.status_code == 503)
        assert "Too many logins at once" in busy.text and busy.headers["retry-after"]

    asyncio.run(run())


def test_the_right_password_still_works_after_someone_elses_burst(
        burst_settings: Settings) -> None:
    async def run() -> None:
        c, _ = _client(burst_settings)
        async with c:
            for i in range(25):  # another address hammers a name that is not alice
                await _login(c, "mallory", f"guess {i}", "203.0.113.66")
            r = await _login(c, *ALICE, "192.0.2.10")
            assert r.status_code == 303 and "bt_session=" in r.headers["set-cookie"]

    asyncio.run(run())
