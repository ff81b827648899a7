"""The three service accounts: the web app's role only reads, the workers' role runs whole
nights but cannot alter the pipeline's tables, the owner migrates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from battletracker.db import dispose_engines, engine_for, session_scope
from battletracker.migrate import upgrade_and_grant
from battletracker.pipeline.local import run_cycle
from battletracker.roles import WEB_ROLE, WORKER_ROLE, check_roles
from battletracker.settings import ApiKey, IdRange, Settings
from battletracker.stats.materialise import materialise
from battletracker.testing.databases import temporary_database
from battletracker.wargaming.simulator import BASE_URL, PS_MIN, XBOX_MIN, Population, Simulator
from battletracker.web.app import create_app
from battletracker.web.auth import hash_password
from battletracker.web.secret import new_secret_key

pytestmark = pytest.mark.integration

WEB_PW, WORKER_PW = "web-role-test-password", "worker-role-test-password"


def _as(settings: Settings, role: str, password: str) -> Settings:
    url = make_url(settings.database_url).set(username=role, password=password)
    return settings.replace(database_url=url.render_as_string(hide_password=False))


@pytest.fixture(scope="module")
def owner() -> Iterator[Settings]:
    pop_span = 600
    base = Settings(
        wg_api_url=BASE_URL, wg_keys=(ApiKey("k", 1000.0),), chunk_size=500,
        xbox_range=IdRange(XBOX_MIN, XBOX_MIN + pop_span),
        ps_range=IdRange(PS_MIN, PS_MIN + pop_span),
        db_web_password=WEB_PW, db_worker_password=WORKER_PW,
    )
    with temporary_database(base) as settings:
        assert upgrade_and_grant(settings) == [WEB_ROLE, WORKER_ROLE]
        yield settings
        dispose_engines()


@pytest.fixture(scope="module")
def crawled(owner: Settings) -> Settings:
    """Two nights run entirely as the workers' role: partitions, staging, diffs, boards."""
    worker = _as(owner, WORKER_ROLE, WORKER_PW)
    pop = Population(seed=5, xbox_ids=500, ps_ids=500, new_per_day=20, active_share=0.5)
    sim = Simulator(pop, keys={"k": 1000.0})
    for night in (1, 2):
        sim.day = night
        day = pop.date_of(night)
        run_cycle(worker, day, transport=sim.transport(),
                  after_diffs=lambda _cid, d=day: materialise(engine_for(worker), d))
    return owner


def test_the_workers_role_runs_whole_nights(crawled: Settings) -> None:
    with engine_for(crawled).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cycles WHERE status = 'done'")
                            ).scalar_one() == 2
        assert conn.execute(text("SELECT count(*) FROM diff_battles")).scalar_one() > 0
        assert conn.execute(text("SELECT count(*) FROM lbe__battles__all")).scalar_one() > 0
        # the night's staging partitions were made and dropped by the owner's functions
        owners = conn.execute(text(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
            "WHERE relname LIKE 'total\\_battles\\_%' OR relname LIKE 'diff\\_battles\\_%'"
        )).scalars().all()
    assert owners and WORKER_ROLE not in owners


@pytest.mark.parametrize("statement", [
    "ALTER TABLE players ADD COLUMN mallory int",
    "DROP TABLE cycles",
    "TRUNCATE chunks",
    "ALTER TABLE total_battles DETACH PARTITION total_battles_2026_01",
    "CREATE INDEX ix_mallory ON players (nickname)",
])
def test_the_workers_role_cannot_alter_the_pipeline_s_tables(
    crawled: Settings, statement: str
) -> None:
    worker = _as(crawled, WORKER_ROLE, WORKER_PW)
    with pytest.raises(ProgrammingError, match=r"must be owner|permission denied"), \
            engine_for(worker).begin() as conn:
        conn.execute(text(statement))


@pytest.mark.parametrize("statement", [
    "INSERT INTO platform_ranges (platform, min_id, max_id, history) "
    "VALUES ('xbox', 1, 2, '[]')",
    "UPDATE players SET nickname = 'mallory'",
    "DELETE FROM cycles",
    "UPDATE lbe__battles__all SET score = 0",
    "SELECT battletracker_month_partitions(DATE '2030-01-01')",
    "CREATE TABLE mallory (x int)",
])
def test_the_web_app_s_role_cannot_write(crawled: Settings, statement: str) -> None:
    web = _as(crawled, WEB_ROLE, WEB_PW)
    with pytest.raises(ProgrammingError, match="permission denied"), \
            session_scope(web) as session:
        session.execute(text(statement))


def test_the_web_app_serves_its_pages_through_the_read_only_role(crawled: Settings) -> None:
    web = _as(crawled, WEB_ROLE, WEB_PW).replace(
        secret_key=new_secret_key(),
        operators=(("olga", hash_password("olga's pass", iterations=1_000)),))
    with TestClient(create_app(web)) as client:
        assert client.get("/api/v1/cycles").json()[0]["status"] == "done"
        assert len(client.get("/api/v1/activity", params={"days": 3650}).json()) > 0
        top = client.get("/api/v1/boards/battles").json()
        assert top["total"] > 0
        assert client.get("/").status_code == 200
        # its own login sessions are the one thing it writes (web_sessions, issue 15b)
        login = client.post("/login", data={"username": "olga", "password": "olga's pass"},
                            follow_redirects=False)
        assert login.status_code == 303
        assert client.get("/operator", follow_redirects=False).status_code == 200
        assert client.post("/logout", follow_redirects=False).status_code == 303
        assert client.get("/operator", follow_redirects=False).status_code == 303


def test_check_roles_sees_them_healthy_and_sees_a_web_role_that_may_write(
    crawled: Settings,
) -> None:
    with engine_for(crawled).begin() as conn:
        checks = {c.role: c for c in check_roles(conn)}
        assert all(c.problem() is None for c in checks.values()), checks
        assert checks[WEB_ROLE].can_login and not checks[WEB_ROLE].writes
        conn.execute(text(f"GRANT INSERT ON players TO {WEB_ROLE}"))
        bad = {c.role: c for c in check_roles(conn)}
        problem = bad[WEB_ROLE].problem()
        assert problem is not None and "must only read" in problem
        conn.execute(text(f"REVOKE INSERT ON players FROM {WEB_ROLE}"))


def test_upgrade_is_idempotent_and_keeps_the_grants(crawled: Settings) -> None:
    upgrade_and_grant(crawled)
    with engine_for(crawled).connect() as conn:
        assert all(c.problem() is None for c in check_roles(conn))


def test_the_web_role_writes_its_own_tables_only(crawled: Settings) -> None:
    """Logins (web_sessions) and the nodes' registration are the web app's own writes."""
    web = _as(crawled, WEB_ROLE, WEB_PW)
    with session_scope(web) as session:
        session.execute(text(
            "INSERT INTO web_sessions (token_hash, guest, expires_at) "
            "VALUES ('t' || repeat('0', 63), true, now() + interval '1 hour')"))
        session.execute(text("DELETE FROM web_sessions"))
        session.execute(text("INSERT INTO node_invites (code_hash, expires_at) "
                             "VALUES ('h', now() + interval '1 day')"))
