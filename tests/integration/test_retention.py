"""The snapshot retention rule: months past the horizon keep their Sunday snapshots only,
run as the workers' role, once, without touching recent months, diffs or players."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from battletracker.db import dispose_engines, engine_for
from battletracker.migrate import upgrade_and_grant
from battletracker.models import COUNTERS
from battletracker.pipeline.partitions import ensure_partitions_between
from battletracker.pipeline.retention import compact_snapshots, due_months
from battletracker.roles import WORKER_ROLE
from battletracker.settings import Settings
from tests.common.services import run_cli

pytestmark = pytest.mark.integration

WORKER_PW = "retention-worker-password"
FIRST, LAST = dt.date(2026, 1, 1), dt.date(2026, 4, 30)
ACCOUNTS = range(1_000, 1_040)
OTHERS = ", ".join(c for c in COUNTERS if c != "battles")
ZEROS = ", ".join("0" for c in COUNTERS if c != "battles")


@pytest.fixture()
def owner() -> Iterator[Settings]:
    from battletracker.testing.databases import temporary_database

    with temporary_database(Settings(db_worker_password=WORKER_PW)) as settings:
        upgrade_and_grant(settings)
        with engine_for(settings).begin() as conn:
            ensure_partitions_between(conn, FIRST, LAST)
            for table in ("total_battles", "diff_battles"):
                conn.execute(text(f"""
                    INSERT INTO {table} (account_id, date, platform, {OTHERS}, battles)
                    SELECT a, d::date, 'xbox', {ZEROS}, a + (d::date - CAST(:first AS date))
                    FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) a,
                         generate_series(CAST(:first AS timestamp), CAST(:last AS timestamp),
                                         interval '1 day') d
                """), {"lo": ACCOUNTS[0], "hi": ACCOUNTS[-1], "first": FIRST, "last": LAST})
        yield settings
        dispose_engines()


def _worker(settings: Settings) -> Settings:
    url = make_url(settings.database_url).set(username=WORKER_ROLE, password=WORKER_PW)
    return settings.replace(database_url=url.render_as_string(hide_password=False))


def _days(settings: Settings, table: str) -> dict[dt.date, int]:
    with engine_for(settings).connect() as conn:
        rows = conn.execute(text(f"SELECT date, count(*) FROM {table} GROUP BY 1"))
        return {r[0]: r[1] for r in rows}


def test_months_past_the_horizon_keep_their_sundays_and_nothing_else(owner: Settings) -> None:
    today = dt.date(2026, 5, 15)  # horizon 2026-02-14: January is due, February is not
    worker = engine_for(_worker(owner))
    assert due_months(worker, today, 90) == [dt.date(2026, 1, 1)]
    before = _days(owner, "total_battles")

    done = compact_snapshots(worker, today, 90)

    january = [FIRST + dt.timedelta(days=i) for i in range(31)]
    sundays = [d for d in january if d.isoweekday() == 7]
    assert [(c.month, c.rows_before, c.rows_after) for c in done] == [
        (dt.date(2026, 1, 1), 31 * len(ACCOUNTS), len(sundays) * len(ACCOUNTS))
    ]
    after = _days(owner, "total_battles")
    assert {d for d in after if d.month == 1} == set(sundays)
    assert all(after[d] == len(ACCOUNTS) for d in sundays)
    assert {d: n for d, n in after.items() if d.month > 1} == {
        d: n for d, n in before.items() if d.month > 1
    }, "a month inside the horizon is left whole"
    assert sum(_days(owner, "diff_battles").values()) == 120 * len(ACCOUNTS), "diffs kept"
    # a second run, or the next day's, finds nothing more to do
    assert compact_snapshots(worker, today, 90) == []
    assert due_months(worker, today, 90) == []


def test_the_compacted_month_is_still_a_keyed_partition_of_total_battles(
    owner: Settings,
) -> None:
    compact_snapshots(engine_for(_worker(owner)), dt.date(2026, 5, 15), 90)
    engine = engine_for(owner)
    sunday = dt.date(2026, 1, 4)
    with engine.connect() as conn:
        parent = conn.execute(text("""
            SELECT i.inhparent::regclass::text FROM pg_inherits i
            WHERE i.inhrelid = 'total_battles_2026_01'::regclass""")).scalar()
        assert parent == "total_battles"
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(f"""INSERT INTO total_battles (account_id, date, platform, {OTHERS},
                              battles) VALUES (:a, :d, 'xbox', {ZEROS}, 1)"""),
                     {"a": ACCOUNTS[0], "d": sunday})
    with engine.begin() as conn:  # the rows are its again, under its bound
        conn.execute(text(f"""INSERT INTO total_battles (account_id, date, platform, {OTHERS},
                              battles) VALUES (:a, :d, 'xbox', {ZEROS}, 1)"""),
                     {"a": 99, "d": sunday})
    with engine.connect() as conn:  # a Sunday's snapshot is still read with its diff
        rows = conn.execute(text("""
            SELECT d.date, t.battles FROM diff_battles d
            LEFT JOIN total_battles t ON t.account_id = d.account_id AND t.date = d.date
            WHERE d.account_id = :a AND d.date BETWEEN :s AND :e ORDER BY 1"""),
            {"a": ACCOUNTS[0], "s": sunday, "e": sunday + dt.timedelta(days=1)}).all()
    assert rows == [(sunday, ACCOUNTS[0] + 3), (sunday + dt.timedelta(days=1), None)]


def test_db_compact_lists_then_compacts_as_the_operator_types_it(owner: Settings) -> None:
    env = {"BATTLETRACKER_DATABASE_URL": owner.database_url}
    dry = run_cli("db", "compact", "--today", "2026-06-15", "--dry-run", env=env)
    assert dry.strip() == "due: 2026-01, 2026-02"
    assert len(_days(owner, "total_battles")) == 120, "a dry run changes nothing"
    done = run_cli("db", "compact", "--today", "2026-06-15", env=env)
    assert "2026-01: kept 160 of 1240 snapshot rows" in done
    assert "2026-02: kept 160 of 1120 snapshot rows" in done
    assert "nothing to compact" in run_cli("db", "compact", "--today", "2026-06-15", env=env)


def test_a_horizon_shorter_than_a_month_is_refused() -> None:
    from battletracker.settings import SettingsError

    with pytest.raises(SettingsError, match="snapshot_daily_days"):
        Settings(snapshot_daily_days=7)
