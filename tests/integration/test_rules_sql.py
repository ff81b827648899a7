"""The rules of the game in SQL (pipeline/rules_sql.py) agree with the Python reference.

``validation.row_problem`` is the readable reference; the store applies the same rules
set-based in SQL. Random and edge rows go through both and must get the same verdict
and the very same reason; then whole results go through ``store_result`` and the rows
it sets aside (and why) must be those ``validate_result`` sets aside.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from battletracker.db import engine_for, psycopg_conninfo, session_scope
from battletracker.models import COUNTERS
from battletracker.pipeline.coordinator import create_cycle
from battletracker.pipeline.result import COLUMNS, RESULT_VERSION, validate_result
from battletracker.pipeline.rules_sql import keep_sql, latest_allowed, problem_sql
from battletracker.pipeline.staging import STAGING_TYPES
from battletracker.pipeline.store import store_result
from battletracker.settings import IdRange, Settings
from battletracker.validation import (
    CLOCK_SKEW,
    COUNTER_PER_BATTLE,
    FIRST_CREATED_AT,
    MAX_BATTLES,
    row_problem,
)
from tests.common.rows import counters_for

pytestmark = pytest.mark.integration

NOW = int(dt.datetime(2030, 6, 1, tzinfo=dt.UTC).timestamp())
XBOX = IdRange(7_000, 7_999)  # one chunk of 1,000
_dates = (dt.date(2031, 1, 1) + dt.timedelta(days=i) for i in itertools.count())


@pytest.fixture(scope="module")
def db(module_db_settings: Settings) -> Settings:
    return module_db_settings.replace(xbox_range=XBOX, ps_range=IdRange(1_073_750_000,
                                      1_073_750_999), chunk_size=1_000)  # fmt: skip


@pytest.fixture(scope="module")
def pg(db: Settings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(psycopg_conninfo(db.database_url), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE probe (LIKE staged_accounts)")
        conn.execute("ALTER TABLE probe ALTER nickname TYPE text")  # any length reaches SQL
        yield conn


def sql_problems(pg: psycopg.Connection[Any], rows: list[list[Any]]) -> dict[int, str | None]:
    """Each row's reason by the SQL rules, keyed by position (as ``account_id``)."""
    pg.execute("TRUNCATE probe")
    with (
        pg.cursor() as cur,
        cur.copy(f"COPY probe (cycle_id, {', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as cp,
    ):
        cp.set_types(["int4", "int8", "text", *STAGING_TYPES[3:]])
        for i, r in enumerate(rows):
            cp.write_row((1, i, *r[1:]))
    got = pg.execute(f"SELECT account_id, {problem_sql(str(latest_allowed(NOW)))} FROM probe")
    return dict(got.fetchall())


def sql_keeps(pg: psycopg.Connection[Any], *, nicknames: bool) -> dict[int, tuple[bool, bool]]:
    """For the rows in ``probe``: ``keep_sql`` and ``problem_sql(...) IS NULL``, by row."""
    latest = str(latest_allowed(NOW))
    got = pg.execute(
        f"SELECT account_id, {keep_sql(latest, nicknames=nicknames)}, "
        f"({problem_sql(latest, nicknames=nicknames)}) IS NULL FROM probe"
    )
    return {int(i): (keep, clean) for i, keep, clean in got.fetchall()}


# -- rows: honest ones, and each rule pushed to either side of its edge ---------------------

_counter = st.one_of(st.integers(-3, 3), st.integers(0, 10**7), st.integers(-(2**63), 2**63 - 1))
_stamp = st.one_of(
    st.none(),
    st.just(0),
    st.sampled_from([FIRST_CREATED_AT - 1, FIRST_CREATED_AT, FIRST_CREATED_AT + 1,
                     NOW + CLOCK_SKEW - 1, NOW + CLOCK_SKEW, NOW + CLOCK_SKEW + 1]),
    st.integers(FIRST_CREATED_AT - 10**6, NOW + 10**6),
    st.integers(-(2**63), 2**63 - 1),
)  # fmt: skip
_nick_chars = st.characters(codec="utf-8", exclude_characters="\x00")  # NUL: no text holds it
_nickname = st.one_of(
    st.text(_nick_chars, min_size=0, max_size=70),
    st.text(st.characters(min_codepoint=1, max_codepoint=0xA0), max_size=5),
)


@st.composite
def rows(draw: st.DrawFn) -> list[Any]:
    """A row near the edges: honest counters, then a few pushed around their bounds."""
    battles = draw(
        st.one_of(st.integers(0, 3_000), st.sampled_from([0, 1, MAX_BATTLES, MAX_BATTLES + 1, -1]))
    )
    counters = dict(zip(COUNTERS, counters_for(max(battles, 0), draw(st.integers(0, 99))),
                        strict=True))  # fmt: skip
    counters["battles"] = battles
    for name in draw(st.lists(st.sampled_from(COUNTERS), max_size=3)):
        limit = COUNTER_PER_BATTLE[name] * max(battles, 0)
        counters[name] = draw(st.one_of(st.sampled_from([limit, limit + 1, -1, 0]), _counter))
    if draw(st.booleans()):
        hits = counters["shots"] + draw(st.integers(-1, 1))
        counters["hits"] = min(max(hits, -(2**63)), 2**63 - 1)  # an int8 still
    created = draw(st.one_of(st.just(1_500_000_000), _stamp))
    last = draw(st.one_of(st.just(1_700_000_000), _stamp,
                          st.sampled_from([(created or 0) - 1, created or 0])
                          .filter(lambda v: v >= -(2**63))))  # fmt: skip  # an int8 still
    nickname = draw(st.one_of(st.just("tanker"), _nickname))
    return [0, nickname, created, last, *(counters[c] for c in COUNTERS)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows(), min_size=1, max_size=40))
def test_sql_and_python_rules_agree_on_every_row(pg: Any, batch: list[list[Any]]) -> None:
    sql = sql_problems(pg, batch)
    for i, r in enumerate(batch):
        assert sql[i] == row_problem(r, now=NOW), r
    # the COPY's cheaper filter keeps exactly the rows the CASE finds nothing in
    for nicknames in (True, False):
        for i, (keep, clean) in sql_keeps(pg, nicknames=nicknames).items():
            assert keep is clean, (nicknames, batch[i])


def test_each_rule_family_is_reached() -> None:
    """The generator reaches every rule (else the agreement above proves little)."""
    families: set[str] = set()

    @settings(max_examples=1_500, deadline=None, database=None)
    @given(rows())
    def collect(r: list[Any]) -> None:
        reason = row_problem(r, now=NOW)
        if reason is not None:
            families.add(" ".join(w for w in reason.split()[:2] if not w.lstrip("-").isdigit()))

    collect()
    for family in [
        "battles",
        "nickname length",
        "nickname holds",
        "hits",
        "created_at",
        "last_battle_time",
        "wins +",
        *(c for c in COUNTERS if c != "battles"),
    ]:
        assert any(f.startswith(family) for f in families), (family, sorted(families))


# -- whole results through store_result --------------------------------------------------


def _result(db: Settings, body: list[list[Any]]) -> tuple[dict[str, Any], int]:
    """A result for the xbox chunk of a new cycle: ``body``'s rows at spread-out ids."""
    with session_scope(db) as s:
        start = create_cycle(s, db, next(_dates))
    with engine_for(db).connect() as conn:
        chunk_id, first, last = conn.execute(text(
            "SELECT id, first_id, last_id FROM chunks WHERE cycle_id = :c AND platform = 'xbox'"),
            {"c": start.cycle_id}).one()  # fmt: skip
    step = (last - first + 1) // len(body)
    for i, r in enumerate(body):
        r[0] = first + i * step
    msg = {
        "v": RESULT_VERSION,
        "cycle_id": start.cycle_id,
        "chunk_id": chunk_id,
        "platform": "xbox",
        "first_id": first,
        "last_id": last,
        "columns": list(COLUMNS),
        "rows": body,
        "empty": last - first + 1 - len(body),
        "node": "n1",
        "seconds": 1.0,
    }
    return msg, start.cycle_id


_honest = st.builds(lambda b, salt: [0, "tanker", 1_500_000_000, 1_700_000_000,
                                     *counters_for(b, salt)],
                    st.integers(0, 5_000), st.integers(0, 99))  # fmt: skip


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.one_of(_honest, rows()), min_size=20, max_size=200))
def test_store_sets_aside_what_the_python_rules_set_aside(
    db: Settings, body: list[list[Any]]
) -> None:
    msg, cid = _result(db, body)
    expected = validate_result(msg, now=NOW)
    with session_scope(db) as s:
        report = store_result(s, msg, now=NOW)
    assert (report.accounts, report.set_aside) == (len(expected.rows), len(expected.set_aside))
    with engine_for(db).connect() as conn:
        staged = [tuple(r) for r in conn.execute(text(
            f"SELECT {', '.join(COLUMNS)} FROM staged_accounts WHERE cycle_id = :c "
            "ORDER BY account_id"), {"c": cid})]  # fmt: skip
        aside = conn.execute(text(
            "SELECT account_id, reason, row FROM set_aside_rows WHERE cycle_id = :c "
            "ORDER BY account_id"), {"c": cid}).all()  # fmt: skip
        counts = conn.execute(text("SELECT accounts, set_aside FROM cycles WHERE id = :c"),
                              {"c": cid}).one()  # fmt: skip
    assert staged == [tuple(r) for r in expected.rows]
    assert [(a, r) for a, r, _ in aside] == [(s.account_id, s.reason) for s in expected.set_aside]
    assert [row for _, _, row in aside] == [list(s.row) for s in expected.set_aside]
    assert tuple(counts) == (len(expected.rows), len(expected.set_aside))
