"""Nights in any order, a baseline first night, counters that go down: counted once.

Real PostgreSQL, the stage functions the Celery tasks call, and the simulator in
process. Every test checks each account's play over the nights against the simulator's
truth: the diffs of the nights after the first sum to exactly what the account played
since the first night (new accounts: everything), and no diff is ever negative.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from sqlalchemy import select, text

from battletracker.db import engine_for, session_scope
from battletracker.models import COUNTERS, Chunk, Cycle, CycleStatus
from battletracker.pipeline.coordinator import CycleRefused, close_open_nights, create_cycle
from battletracker.pipeline.diffs import compute_diffs, next_night_to_diff
from battletracker.pipeline.fetch import KeySlot, fetch_chunk
from battletracker.pipeline.local import advance, run_cycle
from battletracker.pipeline.result import ChunkSpec
from battletracker.pipeline.stages import retry_cycle
from battletracker.pipeline.store import StoreOutcome, store_result
from battletracker.settings import ApiKey, IdRange, Settings
from battletracker.wargaming.client import WargamingClient
from battletracker.wargaming.ratelimit import NoLimit
from battletracker.wargaming.simulator import BASE_URL, PS_MIN, XBOX_MIN, Population, Simulator

pytestmark = pytest.mark.integration

IDS, NEW = 900, 30
SPAN = IDS + NEW * 6  # the ranges hold every account of the nights tested: no growth


def make(db_settings: Settings, seed: int = 31) -> tuple[Settings, Population, Simulator]:
    pop = Population(seed=seed, xbox_ids=IDS, ps_ids=IDS, new_per_day=NEW, active_share=0.5)
    sim = Simulator(pop, keys={"k": 1_000_000.0})
    db = db_settings.replace(
        wg_api_url=BASE_URL, wg_keys=(ApiKey("k", 1000.0),), chunk_size=200,
        xbox_range=IdRange(XBOX_MIN, XBOX_MIN + SPAN), ps_range=IdRange(PS_MIN, PS_MIN + SPAN),
        growth_margin=0,
    )  # fmt: skip
    return db, pop, sim


def truth(pop: Population, day: int) -> dict[int, tuple[int, ...]]:
    return {i: tuple(a["statistics"]["all"][c] for c in COUNTERS) for i, a in pop.truth(day)}


def query(db: Settings, sql: str, **params: Any) -> list[Any]:
    with engine_for(db).connect() as conn:
        return list(conn.execute(text(sql), params).all())


def diffs_by_account(db: Settings, after: dt.date) -> dict[int, tuple[int, ...]]:
    """Each account's diffs summed over the dates after ``after``."""
    sums = ", ".join(f"sum({c})::bigint" for c in COUNTERS)
    rows = query(db, f"SELECT account_id, {sums} FROM diff_battles WHERE date > :d "
                     "GROUP BY account_id", d=after)  # fmt: skip
    return {r[0]: tuple(r[1:]) for r in rows}


def assert_counted_once(db: Settings, pop: Population, first: int, last: int) -> None:
    """The diffs after night ``first`` are exactly each account's play up to night ``last``."""
    before, now = truth(pop, first), truth(pop, last)
    expected = {}
    for i, counters in now.items():
        played = tuple(a - b for a, b in zip(counters, before.get(i, (0,) * 14), strict=True))
        if any(played):
            expected[i] = played
    got = diffs_by_account(db, pop.date_of(first))
    wrong = {i for i in set(expected) | set(got) if expected.get(i) != got.get(i)}
    assert not wrong, f"{len(wrong)} accounts counted wrongly, e.g. " + ", ".join(
        f"{i}: want {expected.get(i)} got {got.get(i)}" for i in sorted(wrong)[:2])
    negative = query(db, "SELECT count(*) FROM diff_battles WHERE "
                         + " OR ".join(f"{c} < 0" for c in COUNTERS))[0][0]  # fmt: skip
    assert negative == 0


def players_now(db: Settings) -> dict[int, tuple[int, ...]]:
    rows = query(db, f"SELECT account_id, {', '.join(COUNTERS)} FROM players")
    return {r[0]: tuple(r[1:]) for r in rows if r[1] > 0 or any(r[1:])}


def night_messages(
    db: Settings, sim: Simulator, cycle_id: int, keep: Callable[[Chunk], bool] = lambda c: True,
) -> tuple[list[ChunkSpec], list[dict[str, Any]]]:
    """The cycle's chunks that ``keep`` selects, fetched as a node sends them."""
    with session_scope(db) as s:
        chunks = [c for c in s.execute(select(Chunk).where(Chunk.cycle_id == cycle_id)
                                       .order_by(Chunk.id)).scalars() if keep(c)]  # fmt: skip
        specs = [ChunkSpec(c.id, c.cycle_id, c.platform.value, c.first_id, c.last_id)
                 for c in chunks]  # fmt: skip

    async def run() -> list[dict[str, Any]]:
        client = WargamingClient(BASE_URL, "k", transport=sim.transport())
        try:
            slot = KeySlot(client, NoLimit(), concurrency=4)
            return [(await fetch_chunk(spec, [slot], node="t")).to_message() for spec in specs]
        finally:
            await client.aclose()

    return specs, asyncio.run(run())


def fetch_and_store(
    db: Settings, sim: Simulator, cycle_id: int, keep: Callable[[Chunk], bool] = lambda c: True,
    expect: StoreOutcome = StoreOutcome.stored,
) -> list[int]:
    """Fetch the cycle's chunks that ``keep`` selects, as a node would, and store them."""
    specs, messages = night_messages(db, sim, cycle_id, keep)
    for message in messages:
        with session_scope(db) as s:
            assert store_result(s, message).outcome == expect
    return [s.chunk_id for s in specs]


def ids_of(chunk_ids: Iterable[int], db: Settings) -> set[int]:
    rows = query(db, "SELECT first_id, last_id FROM chunks WHERE id = ANY(:ids)",
                 ids=list(chunk_ids))
    return {i for lo, hi in rows for i in range(lo, hi + 1)}


# -- the first night -----------------------------------------------------------------------


def test_the_first_night_is_a_baseline_and_counts_no_activity(db_settings: Settings) -> None:
    db, pop, sim = make(db_settings)
    sim.day = 1
    summary = run_cycle(db, pop.date_of(1), transport=sim.transport())
    assert summary.status == "done"
    day = pop.date_of(1)
    assert query(db, "SELECT count(*) FROM diff_battles")[0][0] == 0
    snapshots = query(db, "SELECT count(*) FROM total_battles WHERE date = :d", d=day)[0][0]
    played = sum(1 for c in truth(pop, 1).values() if c[0] > 0)
    assert snapshots == played > 0
    assert query(db, "SELECT baseline_accounts FROM cycles")[0][0] == played
    # the activity the dashboard charts and the day's boards: nothing played "today"
    activity = query(db, "SELECT platform, active_accounts, battles FROM daily_activity "
                         "WHERE date = :d ORDER BY 1", d=day)  # fmt: skip
    assert activity == [("ps", 0, 0), ("xbox", 0, 0)]
    assert query(db, "SELECT total FROM leaderboard_builds WHERE board = 'battles' "
                     "AND time_window = 'day'")[0][0] == 0  # fmt: skip
    assert query(db, "SELECT total FROM leaderboard_builds WHERE board = 'battles' "
                     "AND time_window = 'all'")[0][0] > 0  # fmt: skip
    # the second night counts one day of play, new accounts whole
    sim.day = 2
    run_cycle(db, pop.date_of(2), transport=sim.transport())
    assert_counted_once(db, pop, 1, 2)
    battles = query(db, "SELECT sum(battles) FROM daily_activity WHERE date = :d",
                    d=pop.date_of(2))[0][0]  # fmt: skip
    t1, t2 = truth(pop, 1), truth(pop, 2)
    assert battles == sum(c[0] - t1.get(i, (0,))[0] for i, c in t2.items())
    assert query(db, "SELECT DISTINCT days FROM diff_battles") == [(1,)]


# -- a night closed as partial when the next is due ----------------------------------------


def test_a_stalled_night_is_closed_and_every_play_counted_once(db_settings: Settings) -> None:
    db, pop, sim = make(db_settings, seed=32)
    sim.day = 1
    run_cycle(db, pop.date_of(1), transport=sim.transport())
    # night 2: only the even chunks come back before night 3 is due
    sim.day = 2
    with session_scope(db) as s:
        night2 = create_cycle(s, db, pop.date_of(2)).cycle_id
    stored = fetch_and_store(db, sim, night2, keep=lambda c: c.id % 2 == 0)
    sim.day = 3
    with session_scope(db) as s:
        closed = close_open_nights(s, pop.date_of(3))
        night3 = create_cycle(s, db, pop.date_of(3)).cycle_id
    [c2] = closed
    total = query(db, "SELECT chunks_total FROM cycles WHERE id = :c", c=night2)[0][0]
    assert (c2.cycle_id, c2.missed_chunks) == (night2, total - len(stored))
    assert 0 < len(stored) < total
    with session_scope(db) as s:
        cycle = s.get(Cycle, night2)
        assert cycle is not None and cycle.partial and cycle.status == CycleStatus.diffing
        assert cycle.notes["partial"]["missed_chunks"] == c2.missed_chunks
        # a retry of the closed night is refused with the reason
        with pytest.raises(CycleRefused, match="closed as partial"):
            retry_cycle(s, cycle, lambda specs: None)
    # a result for a missed chunk, arriving now, is refused as late
    missed = query(db, "SELECT id FROM chunks WHERE cycle_id = :c AND status = 'missed'",
                   c=night2)  # fmt: skip
    assert len(missed) == c2.missed_chunks
    missed_ids = {m[0] for m in missed}
    fetch_and_store(db, sim, night2, keep=lambda c: c.id in missed_ids, expect=StoreOutcome.late)
    # night 3 is fetched completely and diffed first: it waits for night 2
    sim.day = 3
    fetch_and_store(db, sim, night3)
    with session_scope(db) as s:
        assert compute_diffs(s, night3) is None
        assert next_night_to_diff(s) == night2
    advance(db)
    assert {r[0] for r in query(db, "SELECT status FROM cycles")} == {"done"}
    assert_counted_once(db, pop, 1, 3)
    assert players_now(db) == {i: c for i, c in truth(pop, 3).items() if any(c)}
    # the accounts night 2 missed and that played: one row on night 3 spanning two days
    missed_ids = ids_of(missed_ids, db)
    spans = dict(query(db, "SELECT account_id, days FROM diff_battles WHERE date = :d",
                       d=pop.date_of(3)))  # fmt: skip
    old_missed = [i for i in spans if i in missed_ids and i in truth(pop, 1)]
    assert old_missed and all(spans[i] == 2 for i in old_missed)
    assert all(d == 1 for i, d in spans.items() if i not in missed_ids)
    # and a later date than the latest night cannot be started for an earlier date
    with session_scope(db) as s, pytest.raises(CycleRefused, match="cannot start"):
        create_cycle(s, db, pop.date_of(2) - dt.timedelta(days=5))


def test_a_whole_night_missed_counts_two_days_on_the_next(db_settings: Settings) -> None:
    db, pop, sim = make(db_settings, seed=33)
    sim.day = 1
    run_cycle(db, pop.date_of(1), transport=sim.transport())
    with session_scope(db) as s:  # night 2 recorded, nothing of it ever fetched
        create_cycle(s, db, pop.date_of(2))
    sim.day = 3
    summary = run_cycle(db, pop.date_of(3), transport=sim.transport())
    assert summary.status == "done"
    assert query(db, "SELECT date, status, partial FROM cycles ORDER BY date") == [
        (pop.date_of(1), "done", False), (pop.date_of(2), "done", True),
        (pop.date_of(3), "done", False)]  # fmt: skip
    night2_diffs = query(db, "SELECT count(*) FROM diff_battles WHERE date = :d",
                         d=pop.date_of(2))  # fmt: skip
    assert night2_diffs == [(0,)]
    assert_counted_once(db, pop, 1, 3)
    days = query(db, "SELECT DISTINCT days FROM diff_battles d JOIN players p "
                     "USING (account_id) WHERE d.date = :d AND p.created_at < :t",
                 d=pop.date_of(3), t=int(dt.datetime(2026, 1, 2, tzinfo=dt.UTC).timestamp()))
    assert days == [(2,)]


# -- counters that go down -----------------------------------------------------------------


def test_a_counter_lower_than_before_is_an_anomaly_not_a_negative_diff(
    db_settings: Settings,
) -> None:
    db, pop, sim = make(db_settings, seed=34)
    sim.day = 1
    run_cycle(db, pop.date_of(1), transport=sim.transport())
    # an account whose stored counters are above what the API will say tomorrow
    account, battles = query(db, "SELECT account_id, battles FROM players WHERE battles > 100 "
                                 "ORDER BY account_id LIMIT 1")[0]  # fmt: skip
    with engine_for(db).begin() as conn:
        conn.execute(text("UPDATE players SET battles = battles + 1000, wins = wins + 1000 "
                          "WHERE account_id = :a"), {"a": account})  # fmt: skip
    sim.day = 2
    run_cycle(db, pop.date_of(2), transport=sim.transport())
    assert query(db, "SELECT count(*) FROM diff_battles WHERE account_id = :a", a=account) == [(0,)]
    [(kind, reason, row)] = query(db, "SELECT kind, reason, row FROM set_aside_rows "
                                      "WHERE account_id = :a", a=account)  # fmt: skip
    assert kind == "decrease" and "battles" in reason and "wins" in reason
    assert row["old"][0] == battles + 1000 and row["new"][0] == truth(pop, 2)[account][0]
    assert query(db, "SELECT anomalies FROM cycles WHERE date = :d", d=pop.date_of(2)) == [(1,)]
    # the new counters are its baseline: players holds them, a snapshot records them
    assert players_now(db)[account] == truth(pop, 2)[account]
    negative = query(db, "SELECT count(*) FROM diff_battles WHERE "
                         + " OR ".join(f"{c} < 0" for c in COUNTERS))  # fmt: skip
    assert negative == [(0,)]


def test_a_night_whose_diffs_failed_is_not_overtaken(db_settings: Settings) -> None:
    db, pop, sim = make(db_settings, seed=35)
    sim.day = 1
    run_cycle(db, pop.date_of(1), transport=sim.transport())
    sim.day = 2
    with session_scope(db) as s:
        night2 = create_cycle(s, db, pop.date_of(2)).cycle_id
    fetch_and_store(db, sim, night2)
    with engine_for(db).begin() as conn:  # its diffs failed for good (the operator's turn)
        conn.execute(text("UPDATE cycles SET status = 'failed', failed_stage = 'diffing', "
                          "error = 'forced' WHERE id = :c"), {"c": night2})  # fmt: skip
    sim.day = 3
    summary = run_cycle(db, pop.date_of(3), transport=sim.transport())
    assert summary.status == "diffing"  # waits: diffing it now would count night 2 in it
    with session_scope(db) as s:
        assert compute_diffs(s, summary.cycle_id) is None
        cycle = s.get(Cycle, night2)
        assert cycle is not None
        retry_cycle(s, cycle, lambda specs: None)  # the operator resumes night 2
    advance(db)
    assert [r[0] for r in query(db, "SELECT status FROM cycles ORDER BY date")] == ["done"] * 3
    assert_counted_once(db, pop, 1, 3)
    assert query(db, "SELECT DISTINCT days FROM diff_battles") == [(1,)]
