"""A window's sums made from the previous night's equal the window summed again.

The boards stage makes the week's and month's per-account sums from last night's (plus
the new day, minus the day that left the window) when last night's still sum the same
diffs; otherwise it sums every day again. Here both ways run night after night over
random diffs -- accounts that play once and leave the window, days with no play --
and every night's sums must equal a recount; a night whose diffs were written again,
or sums of a night that is not the previous one, must make the stage sum everything.
"""

from __future__ import annotations

import datetime as dt
import logging
import random

import pytest
from sqlalchemy import Connection, Engine, func, insert, text

from battletracker.constants import COUNTERS, PS_THRESHOLD
from battletracker.db import engine_for
from battletracker.models import Cycle, CycleStatus
from battletracker.pipeline.partitions import ensure_month_partitions
from battletracker.settings import Settings
from battletracker.stats.materialise import (
    WINDOW_DAYS,
    build_window_sums,
    summed_in_order,
    sums_name,
)

pytestmark = pytest.mark.integration

START = dt.date(2026, 3, 1)
ACCOUNTS = [*range(1, 120), *range(PS_THRESHOLD, PS_THRESHOLD + 60)]
INCREMENT = "from the previous night's"
FULL = "every day summed"


def _night(conn: Connection, rng: random.Random, day: dt.date) -> None:
    """One night's diffs (some nights none at all) and its cycle, diffed now."""
    ensure_month_partitions(conn, day)
    players = rng.sample(ACCOUNTS, rng.choice([0, 3, 20, 60]))
    for account in players:
        battles = rng.randint(1, 30)
        values = {c: rng.randint(0, battles) for c in COUNTERS}
        values["battles"] = battles
        conn.execute(
            text(f"INSERT INTO diff_battles (account_id, date, platform, {', '.join(COUNTERS)}) "
                 f"VALUES (:a, :d, :p, {', '.join(':' + c for c in COUNTERS)})"),
            {"a": account, "d": day, "p": "xbox" if account < PS_THRESHOLD else "ps", **values},
        )
    conn.execute(insert(Cycle).values(date=day, status=CycleStatus.done,
                                      diffed_at=func.clock_timestamp()))


def _recount(conn: Connection, window: str, as_of: dt.date) -> set[tuple[int, ...]]:
    first = as_of - dt.timedelta(days=WINDOW_DAYS[window] - 1)
    sums = ", ".join(f"sum({c})::bigint" for c in COUNTERS)
    return {tuple(r) for r in conn.execute(text(
        f"SELECT account_id, {sums} FROM diff_battles WHERE date BETWEEN :f AND :l "
        "GROUP BY account_id"), {"f": first, "l": as_of})}  # fmt: skip


def _sums(conn: Connection, window: str) -> set[tuple[int, ...]]:
    return {tuple(r) for r in conn.execute(text(
        f"SELECT account_id, {', '.join(COUNTERS)} FROM {sums_name(window)}"))}  # fmt: skip


def _build(engine: Engine, window: str, day: dt.date,
           caplog: pytest.LogCaptureFixture) -> str:
    """Build the window's sums for ``day``; which way they were made."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="battletracker.stats.materialise"), \
            engine.connect() as conn:
        build_window_sums(conn, window, day)
    (how,) = [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records
              if r.getMessage().startswith(f"sums of {window}")]
    return how


@pytest.mark.parametrize("window", ["week", "month"])
def test_night_after_night_the_next_sums_equal_a_recount(
    db_settings: Settings, window: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_for(db_settings)
    rng = random.Random(window)
    ways = []
    for i in range(WINDOW_DAYS[window] + 12):
        day = START + dt.timedelta(days=i)
        with engine.begin() as conn:
            _night(conn, rng, day)
        ways.append(_build(engine, window, day, caplog))
        with engine.connect() as conn:
            assert _sums(conn, window) == _recount(conn, window, day), day
    # the first night sums everything; every later one starts from the night before
    assert ways == [FULL] + [INCREMENT] * (len(ways) - 1)


def test_diffs_written_again_or_a_night_skipped_sum_everything_again(
    db_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_for(db_settings)
    rng = random.Random(5)
    days = [START + dt.timedelta(days=i) for i in range(12)]
    for day in days[:10]:
        with engine.begin() as conn:
            _night(conn, rng, day)
        _build(engine, "week", day, caplog)
    # a night inside the window has its diffs written again (a new diffed_at)
    with engine.begin() as conn:
        conn.execute(text("UPDATE diff_battles SET battles = battles + 7 WHERE date = :d"),
                     {"d": days[7]})
        conn.execute(text("UPDATE cycles SET diffed_at = clock_timestamp() WHERE date = :d"),
                     {"d": days[7]})
        _night(conn, rng, days[10])
    assert _build(engine, "week", days[10], caplog) == FULL
    with engine.connect() as conn:
        assert _sums(conn, "week") == _recount(conn, "week", days[10])
    # sums of two nights ago are not the previous night's
    with engine.begin() as conn:
        _night(conn, rng, days[11])
        _night(conn, rng, days[11] + dt.timedelta(days=1))
    assert _build(engine, "week", days[11] + dt.timedelta(days=1), caplog) == FULL
    with engine.connect() as conn:
        assert _sums(conn, "week") == _recount(conn, "week", days[11] + dt.timedelta(days=1))


def test_full_sums_stream_in_account_order_and_leave_the_planner_as_it_was(
    db_settings: Settings,
) -> None:
    """The full sums read the diffs through the primary key, one account at a time: no
    hash aggregate to spill, no sort (docs/performance.md); the ranking sorts after
    them, in the same transaction, keep the planner's own settings."""
    engine = engine_for(db_settings)
    rng = random.Random(9)
    days = [START + dt.timedelta(days=i) for i in range(40)]  # two month partitions
    with engine.begin() as conn:
        for day in days:
            _night(conn, rng, day)
        conn.execute(text("ANALYZE diff_battles"))
    params = {"first": days[5], "last": days[-1]}
    settings = "current_setting('enable_hashagg') || current_setting('enable_sort')"
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_sort = on"))
        conn.execute(text("CREATE TEMP TABLE seen (settings text)"))
        summed_in_order(conn, f"INSERT INTO seen SELECT {settings}", {})
        inside = conn.execute(text("SELECT settings FROM seen")).scalar_one()
        after = conn.execute(text(f"SELECT {settings}")).scalar_one()
        for name in ("enable_hashagg", "enable_sort"):  # what summed_in_order runs under
            conn.execute(text("SELECT set_config(:n, 'off', true)"), {"n": name})
        streamed = "\n".join(conn.execute(text(
            "EXPLAIN SELECT account_id, sum(battles) FROM diff_battles "
            "WHERE date BETWEEN :first AND :last GROUP BY account_id"), params).scalars())
    assert inside == "offoff" and after == "onon"
    nodes = [line.strip().removeprefix("->").split("  (")[0].strip()
             for line in streamed.splitlines() if "(cost=" in line]
    assert nodes[0] == "GroupAggregate" and "Merge Append" in nodes, streamed
    assert all(n.startswith("Index") for n in nodes[2:]), streamed  # no Sort, no Hash
