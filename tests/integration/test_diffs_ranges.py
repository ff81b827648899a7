"""compute_diffs and grow_ranges over three simulated nights (run_cycle, in-process API).

The module crawls nights 1-3 of a seeded population once, keeping a snapshot of the
database after each night; the tests compare the snapshots with the population's truth.
The Xbox range starts at the population's top, so night 1 must grow it and night 2 must
crawl the accounts that night 1 could not see.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, text

from battletracker.db import engine_for, session_scope
from battletracker.models import COUNTERS, Cycle, CycleStatus, Platform, PlatformRange
from battletracker.pipeline.coordinator import create_cycle
from battletracker.pipeline.diffs import compute_diffs
from battletracker.pipeline.local import run_cycle
from battletracker.pipeline.ranges import Growth, decide_growth, grow_ranges
from battletracker.settings import ApiKey, IdRange, Settings
from battletracker.wargaming.simulator import BASE_URL, PS_MIN, XBOX_MIN, Population, Simulator

pytestmark = pytest.mark.integration

XBOX_IDS, PS_IDS, NEW_PER_DAY = 1200, 800, 100
MARGIN, STEP = 300, 1000
XBOX = IdRange(XBOX_MIN, XBOX_MIN + XBOX_IDS - 1)
PS = IdRange(PS_MIN, PS_MIN + PS_IDS + 5 * STEP)
NIGHTS = (1, 2, 3)
_PLAYER_COLS = ("nickname", "created_at", "last_battle_time", *COUNTERS)

Row = tuple[Any, ...]


def players(db: Settings) -> dict[int, dict[str, Any]]:
    cols = ", ".join((*_PLAYER_COLS, "platform", "updated_at", "last_seen"))
    with engine_for(db).connect() as conn:
        return {r.account_id: r._asdict() for r in conn.execute(
            text(f"SELECT account_id, {cols} FROM players"))}  # fmt: skip


def daily(db: Settings, table: str, day: dt.date) -> dict[int, Row]:
    with engine_for(db).connect() as conn:
        rows = conn.execute(
            text(f"SELECT account_id, platform, {', '.join(COUNTERS)} FROM {table} "
                 "WHERE date = :d"), {"d": day})  # fmt: skip
        return {r[0]: tuple(r[1:]) for r in rows}


def ranges(db: Settings) -> dict[str, tuple[int, int]]:
    with engine_for(db).connect() as conn:
        rows = conn.execute(text("SELECT platform, min_id, max_id FROM platform_ranges"))
        return {p: (lo, hi) for p, lo, hi in rows}


def truth(pop: Population, day: int, crawled: dict[str, tuple[int, int]]) -> dict[int, Row]:
    """What a crawl of ``crawled`` on ``day`` must find: id -> (nickname, times, counters)."""
    out = {}
    for account_id, acc in pop.truth(day):
        lo, hi = crawled["xbox" if account_id < PS_MIN else "ps"]
        if lo <= account_id <= hi:
            stats = acc["statistics"]["all"]
            out[account_id] = (acc["nickname"], acc["created_at"], acc["last_battle_time"],
                               *(stats[c] for c in COUNTERS))  # fmt: skip
    return out


def as_row(p: dict[str, Any]) -> Row:
    return tuple(p[c] for c in _PLAYER_COLS)


@pytest.fixture(scope="module")
def nights(module_db_settings: Settings) -> dict[str, Any]:
    """Run nights 1-3; per night: date, crawled ranges, truth, snapshots, summary."""
    pop = Population(seed=23, xbox_ids=XBOX_IDS, ps_ids=PS_IDS, new_per_day=NEW_PER_DAY)
    sim = Simulator(pop, keys={"k": 1_000_000.0})
    db = module_db_settings.replace(
        wg_api_url=BASE_URL, wg_keys=(ApiKey("k", 1000.0),), chunk_size=200,
        xbox_range=XBOX, ps_range=PS, growth_margin=MARGIN, growth_step=STEP,
    )  # fmt: skip
    out: dict[str, Any] = {"db": db, "pop": pop, "before": {}, "after": {}, "truth": {},
                           "date": {}, "crawled": {}, "summary": {}}  # fmt: skip
    for n in NIGHTS:
        sim.day = n
        day = pop.date_of(n)
        crawled = ranges(db) if n > 1 else {"xbox": (XBOX.min_id, XBOX.max_id),
                                            "ps": (PS.min_id, PS.max_id)}  # fmt: skip
        out["before"][n] = players(db)
        out["summary"][n] = run_cycle(db, day, transport=sim.transport())
        out["after"][n] = players(db)
        out["truth"][n] = truth(pop, n, crawled)
        out["date"][n], out["crawled"][n] = day, crawled
    return out


def expected_diffs(nights: dict[str, Any], n: int) -> dict[int, tuple[int, ...]]:
    """Night 1 is the platforms' baseline: nothing counts as that day's play."""
    return {} if n == 1 else expected_changes(nights, n)


def expected_changes(nights: dict[str, Any], n: int) -> dict[int, tuple[int, ...]]:
    """Changed accounts -> counter deltas; new accounts count whole, if they have battles."""
    now = nights["truth"][n]
    old = {i: as_row(p) for i, p in nights["before"][n].items()}
    out = {}
    for i, row in now.items():
        new_c = row[3:]
        if i not in old:
            if new_c[0] > 0:
                out[i] = new_c
        elif new_c != old[i][3:]:
            out[i] = tuple(a - b for a, b in zip(new_c, old[i][3:], strict=True))
    return out


# -- players -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", NIGHTS)
def test_players_equal_the_truth(nights: dict[str, Any], n: int) -> None:
    got = {i: as_row(p) for i, p in nights["after"][n].items()}
    want = nights["truth"][n]
    assert set(got) == set(want), f"night {n}: accounts missing or extra"
    wrong = [i for i in want if got[i] != want[i]]
    assert not wrong, f"night {n}: {len(wrong)} accounts differ, e.g. {wrong[:3]}"
    assert all(p["platform"] == ("xbox" if i < PS_MIN else "ps")
               for i, p in nights["after"][n].items())  # fmt: skip


def test_every_night_finished(nights: dict[str, Any]) -> None:
    for n in NIGHTS:
        s = nights["summary"][n]
        assert (s.status, s.date) == ("done", nights["date"][n])
        assert s.accounts == len(nights["truth"][n])
        assert s.changed == len(expected_changes(nights, n))
        assert s.new_players == len(set(nights["truth"][n]) - set(nights["before"][n]))


# -- diff_battles / total_battles ----------------------------------------------------------


@pytest.mark.parametrize("n", NIGHTS)
def test_daily_rows_only_for_changed_and_new_players_with_battles(
    nights: dict[str, Any], n: int
) -> None:
    db, day = nights["db"], nights["date"][n]
    want = expected_diffs(nights, n)
    changes = expected_changes(nights, n)
    diffs, totals = daily(db, "diff_battles", day), daily(db, "total_battles", day)
    assert {i: r[1:] for i, r in diffs.items()} == want
    truth_now = nights["truth"][n]
    # the snapshots: every change, the first night's too (its baseline)
    assert {i: r[1:] for i, r in totals.items()} == {i: truth_now[i][3:] for i in changes}
    with engine_for(db).connect() as conn:
        spans = conn.execute(text("SELECT DISTINCT days FROM diff_battles WHERE date = :d"),
                             {"d": day}).scalars().all()  # fmt: skip
        baseline = conn.execute(text("SELECT baseline_accounts FROM cycles WHERE date = :d"),
                                {"d": day}).scalar_one()  # fmt: skip
    assert spans == ([] if n == 1 else [1]), "every account was read the night before"
    assert baseline == (len(changes) if n == 1 else 0)
    assert all(r[0] == ("xbox" if i < PS_MIN else "ps") for i, r in diffs.items())
    # the data holds every case, so the rules above were exercised
    before = nights["before"][n]
    new = set(truth_now) - set(before)
    new_idle = {i for i in new if truth_now[i][3] == 0}
    unchanged = {i for i in before if as_row(before[i]) == truth_now.get(i)}
    assert new and new_idle and new_idle.isdisjoint(totals)
    if n > 1:
        assert unchanged and unchanged.isdisjoint(diffs)
        assert set(want) - new, "some existing players must have played"


# -- players.updated_at / last_seen --------------------------------------------------------


@pytest.mark.parametrize("n", NIGHTS[1:])
def test_unchanged_players_are_not_rewritten(nights: dict[str, Any], n: int) -> None:
    before, after, day = nights["before"][n], nights["after"][n], nights["date"][n]
    unchanged = [i for i in before if as_row(before[i]) == as_row(after[i])]
    changed = [i for i in before if as_row(before[i]) != as_row(after[i])]
    assert unchanged and changed
    for i in unchanged:
        assert after[i]["updated_at"] == before[i]["updated_at"], i
        assert after[i]["last_seen"] == before[i]["last_seen"], i
    for i in changed:
        assert after[i]["updated_at"] > before[i]["updated_at"], i
        assert after[i]["last_seen"] == day, i
    for i in set(after) - set(before):
        assert after[i]["last_seen"] == day


# -- re-running ----------------------------------------------------------------------------


def _fingerprint(db: Settings) -> tuple[Any, ...]:
    with engine_for(db).connect() as conn:
        return tuple(
            conn.execute(text(q)).scalar_one()
            for q in (
                "SELECT md5(string_agg(p::text, '|' ORDER BY account_id)) FROM players p",
                "SELECT md5(string_agg(d::text, '|' ORDER BY account_id, date)) "
                "FROM diff_battles d",
                "SELECT md5(string_agg(t::text, '|' ORDER BY account_id, date)) "
                "FROM total_battles t",
                "SELECT md5(string_agg(c::text, '|' ORDER BY id)) FROM cycles c",
                "SELECT md5(string_agg(r::text, '|' ORDER BY platform)) FROM platform_ranges r",
            )
        )


def test_compute_diffs_on_a_finished_cycle_does_nothing(nights: dict[str, Any]) -> None:
    db = nights["db"]
    before = _fingerprint(db)
    for n in NIGHTS:
        cid = nights["summary"][n].cycle_id
        with session_scope(db) as s:
            assert compute_diffs(s, cid) is None
        with session_scope(db) as s:
            assert grow_ranges(s, db, cid) is None
    with session_scope(db) as s:
        assert compute_diffs(s, 10**6) is None  # no such cycle
    assert _fingerprint(db) == before


def test_running_a_finished_night_again_changes_nothing(nights: dict[str, Any]) -> None:
    db = nights["db"]
    before = _fingerprint(db)
    summary = run_cycle(db, nights["date"][2])
    assert summary == nights["summary"][2]
    assert _fingerprint(db) == before


# -- range growth --------------------------------------------------------------------------


def test_night_one_grew_xbox_only_and_recorded_it(nights: dict[str, Any]) -> None:
    db = nights["db"]
    assert nights["crawled"][2]["xbox"] == (XBOX.min_id, XBOX.max_id + STEP)
    assert ranges(db) == {"xbox": (XBOX.min_id, XBOX.max_id + STEP), "ps": (PS.min_id, PS.max_id)}
    growth = nights["summary"][1].growth
    assert [(g["platform"], g["old_max"], g["new_max"]) for g in growth] == [
        ("xbox", XBOX.max_id, XBOX.max_id + STEP)]  # fmt: skip
    assert nights["summary"][2].growth == nights["summary"][3].growth == []
    with session_scope(db) as s:
        xbox = s.get(PlatformRange, Platform.xbox)
        ps = s.get(PlatformRange, Platform.ps)
        assert xbox is not None and ps is not None
        assert xbox.history == [{
            "date": nights["date"][1].isoformat(), "cycle_id": nights["summary"][1].cycle_id,
            "from": XBOX.max_id, "to": XBOX.max_id + STEP, "highest": growth[0]["highest"],
        }]  # fmt: skip
        assert ps.history == []
    assert growth[0]["highest"] >= XBOX.max_id - MARGIN
    # the accounts above night 1's bound were crawled on night 2 thanks to the growth
    assert any(XBOX.max_id < i < PS_MIN for i in nights["truth"][2])


@pytest.mark.parametrize(
    ("highest", "grows"),
    [(None, False), (0, False), (9_000 - 1_000 - 1, False), (9_000 - 1_000, True),
     (8_500, True), (9_000, True)],
)  # fmt: skip
def test_decide_growth_rule(highest: int | None, grows: bool) -> None:
    g = decide_growth("xbox", 9_000, highest, margin=1_000, step=500)
    assert g == (Growth("xbox", 9_000, 9_500, highest) if grows else None)  # type: ignore[arg-type]


def test_decide_growth_with_zero_margin_grows_only_at_the_bound() -> None:
    assert decide_growth("ps", 100, 99, margin=0, step=7) is None
    assert decide_growth("ps", 100, 100, margin=0, step=7) == Growth("ps", 100, 107, 100)


def test_grow_ranges_records_history_and_is_idempotent(db_settings: Settings) -> None:
    db = db_settings.replace(xbox_range=IdRange(5_000, 10_000),
                             ps_range=IdRange(PS_MIN, PS_MIN + 10_000),
                             growth_margin=100, growth_step=2_000, chunk_size=1_000)  # fmt: skip
    day = dt.date(2026, 5, 4)
    with session_scope(db) as s:
        cid = create_cycle(s, db, day).cycle_id
    with session_scope(db) as s:  # as compute_diffs leaves it
        cycle = s.get(Cycle, cid)
        assert cycle is not None
        cycle.status = CycleStatus.growing
        cycle.notes = {"highest": {"xbox": 9_900, "ps": PS_MIN + 9_899}}
    with session_scope(db) as s:
        grown = grow_ranges(s, db, cid)
    assert grown == [Growth("xbox", 10_000, 12_000, 9_900)]
    with session_scope(db) as s:
        assert grow_ranges(s, db, cid) is None  # second delivery: nothing
    with session_scope(db) as s:
        rows = {r.platform: r for r in s.execute(select(PlatformRange)).scalars()}
        cycle = s.get(Cycle, cid)
        assert cycle is not None
        assert (rows[Platform.xbox].max_id, rows[Platform.ps].max_id) == (12_000, PS_MIN + 10_000)
        assert rows[Platform.xbox].history == [
            {"date": "2026-05-04", "cycle_id": cid, "from": 10_000, "to": 12_000,
             "highest": 9_900}]  # fmt: skip
        assert rows[Platform.ps].history == []
        assert cycle.status == CycleStatus.materialising  # the boards are next
        assert cycle.notes["growth"] == [
            {"platform": "xbox", "old_max": 10_000, "new_max": 12_000, "highest": 9_900}]
        assert cycle.notes["highest"] == {"xbox": 9_900, "ps": PS_MIN + 9_899}
    # the next cycle crawls the grown range
    with session_scope(db) as s:
        nxt = create_cycle(s, db, day + dt.timedelta(days=1))
    with engine_for(db).connect() as conn:
        top = conn.execute(text("SELECT max(last_id) FROM chunks WHERE cycle_id = :c "
                                "AND platform = 'xbox'"), {"c": nxt.cycle_id}).scalar_one()
    assert top == 12_000


def test_grow_ranges_needs_the_growing_stage(db_settings: Settings) -> None:
    with session_scope(db_settings) as s:
        cid = create_cycle(s, db_settings, dt.date(2026, 5, 4)).cycle_id
    with session_scope(db_settings) as s:  # still fetching
        assert grow_ranges(s, db_settings, cid) is None
    with session_scope(db_settings) as s:
        assert all(r.history == [] for r in s.execute(select(PlatformRange)).scalars())
