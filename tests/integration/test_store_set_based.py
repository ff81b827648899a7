"""The set-based store without a staging key: once-only, exact nights, hostile rows refused.

Staging has no primary key (migration 0011) and the rows' types are checked by the
COPY's own dumpers (``pipeline/staging.py``). These tests pin what that must not change:
a result delivered again (also at the same time) stores each account once and the
night's numbers stay exact; a duplicate that got into staging anyway fails the diffs
instead of counting twice; every value of a type no honest fetcher sends refuses the
whole result exactly as the Python rules do, and nothing of it is staged; rows that
break a rule are still set aside with their reasons.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from typing import Any

import pytest
from sqlalchemy import text

from battletracker.db import engine_for, session_scope
from battletracker.models import ChunkStatus
from battletracker.pipeline import staging, store
from battletracker.pipeline.coordinator import create_cycle
from battletracker.pipeline.diffs import compute_diffs
from battletracker.pipeline.local import advance, run_cycle
from battletracker.pipeline.result import COLUMNS, InvalidResult, validate_result
from battletracker.pipeline.store import StoreOutcome, store_result
from battletracker.settings import Settings
from battletracker.wargaming.simulator import Simulator
from tests.integration.test_nights import (
    assert_counted_once,
    make,
    night_messages,
    players_now,
    query,
    truth,
)
from tests.integration.test_store import XBOX, chunks_of, result_for, staged
from tests.integration.test_store import db as db  # the module's database (a fixture)

pytestmark = pytest.mark.integration

_dates = (dt.date(2033, 1, 1) + dt.timedelta(days=i) for i in itertools.count())


def deliver(db: Settings, message: dict[str, Any], times: int) -> list[StoreOutcome]:
    """Store ``message`` ``times`` times at once (threads released together)."""
    start = threading.Barrier(times)
    outcomes: list[StoreOutcome] = []

    def one() -> None:
        start.wait()
        with session_scope(db) as s:
            outcomes.append(store_result(s, message).outcome)

    threads = [threading.Thread(target=one) for _ in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def second_night(db_settings: Settings, seed: int) -> tuple[Settings, Any, Simulator, int]:
    """A baseline night run whole, then the second night created (its chunks to store)."""
    db, pop, sim = make(db_settings, seed=seed)
    sim.day = 1
    run_cycle(db, pop.date_of(1), transport=sim.transport())
    sim.day = 2
    with session_scope(db) as s:
        night = create_cycle(s, db, pop.date_of(2)).cycle_id
    return db, pop, sim, night


def test_redelivered_results_store_each_account_once_and_the_nights_stay_exact(
    db_settings: Settings,
) -> None:
    db, pop, sim, night = second_night(db_settings, seed=41)
    messages = night_messages(db, sim, night)[1]
    for i, message in enumerate(messages):
        # every result twice: at the same time for half of them, one after the other else
        if i % 2:
            outcomes = deliver(db, message, 2)
        else:
            outcomes = deliver(db, message, 1) + deliver(db, message, 1)
        assert sorted(outcomes) == [StoreOutcome.duplicate, StoreOutcome.stored], outcomes
    sent = sum(len(m["rows"]) for m in messages)
    staged_rows, distinct = query(db, "SELECT count(*), count(DISTINCT account_id) FROM "
                                  "staged_accounts WHERE cycle_id = :c", c=night)[0]  # fmt: skip
    assert staged_rows == distinct == sent
    assert query(db, "SELECT accounts, chunks_stored = chunks_total FROM cycles WHERE id = :c",
                 c=night)[0] == (sent, True)  # fmt: skip
    advance(db)
    assert_counted_once(db, pop, 1, 2)
    assert players_now(db) == {i: c for i, c in truth(pop, 2).items() if any(c)}


def test_a_duplicate_that_reached_staging_fails_the_diffs_instead_of_counting_twice(
    db_settings: Settings,
) -> None:
    db, pop, sim, night = second_night(db_settings, seed=42)
    for message in night_messages(db, sim, night)[1]:
        assert deliver(db, message, 1) == [StoreOutcome.stored]
    # an account that played, staged a second time behind the store's back
    cols = ", ".join(("cycle_id", *COLUMNS))
    before = truth(pop, 1)
    played = next(i for i, c in truth(pop, 2).items() if i in before and c != before[i])
    with engine_for(db).begin() as conn:
        conn.execute(text(f"INSERT INTO staged_accounts ({cols}) SELECT {cols} "
                          "FROM staged_accounts WHERE cycle_id = :c AND account_id = :a"),
                     {"c": night, "a": played})  # fmt: skip
    diffs_before = query(db, "SELECT count(*) FROM diff_battles")[0][0]
    with (
        pytest.raises(Exception, match="cannot affect row a second time"),
        session_scope(db) as s,
    ):
        compute_diffs(s, night)
    assert query(db, "SELECT count(*) FROM diff_battles")[0][0] == diffs_before
    assert query(db, "SELECT status FROM cycles WHERE id = :c", c=night)[0][0] == "diffing"


def _edit(row_index: int, column: str, value: Any) -> Any:
    def apply(msg: dict[str, Any]) -> None:
        msg["rows"][row_index][COLUMNS.index(column)] = value

    return apply


def _replace_row(row_index: int, value: Any) -> Any:
    def apply(msg: dict[str, Any]) -> None:
        msg["rows"][row_index] = value(msg["rows"][row_index])

    return apply


# Each a value or row no honest fetcher sends: the whole result is refused.
HOSTILE = {
    "bool counter": _edit(3, "wins", True),
    "false counter": _edit(3, "draws", False),
    "bool id": _edit(0, "account_id", True),
    "bool created_at": _edit(2, "created_at", True),
    "float counter": _edit(3, "battles", 12.0),
    "float zero": _edit(3, "xp", 0.0),
    "8-byte text counter": _edit(4, "damage_dealt", "\x00" * 7 + "\x05"),
    "8-byte text counter, printable": _edit(4, "frags", "00000001"),
    "8-byte text created_at": _edit(5, "created_at", "12345678"),
    "8-byte text last_battle_time": _edit(5, "last_battle_time", "abcdefgh"),
    "text counter": _edit(4, "battles", "-5"),
    "int nickname (8 bytes)": _edit(6, "nickname", 7_594_793_585_839_927_649),
    "int nickname": _edit(6, "nickname", 5),
    "null nickname": _edit(6, "nickname", None),
    "null counter": _edit(6, "shots", None),
    "list counter": _edit(7, "hits", [1]),
    "object counter": _edit(7, "hits", {"a": 1}),
    "short row": _replace_row(8, lambda r: r[:-1]),
    "long row": _replace_row(8, lambda r: [*r, 0]),
    "empty row": _replace_row(8, lambda r: []),
    "object row": _replace_row(8, lambda r: dict(zip(COLUMNS, r, strict=True))),
    "text row": _replace_row(8, lambda r: "x" * len(COLUMNS)),
    "id twice": _replace_row(9, lambda r: [r[0] - 3, *r[1:]]),
    "id outside the chunk": _edit(0, "account_id", XBOX.max_id + 1),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_value_of_a_type_no_fetcher_sends_refuses_the_whole_result(
    db: Settings, case: str
) -> None:
    with session_scope(db) as s:
        cycle_id = create_cycle(s, db, next(_dates)).cycle_id
    chunk = chunks_of(db, cycle_id)[0]
    msg = result_for(chunk)
    HOSTILE[case](msg)
    with pytest.raises(InvalidResult):  # what the readable Python rules say
        validate_result(msg)
    with pytest.raises(InvalidResult), session_scope(db) as s:
        store_result(s, msg)
    assert staged(db, cycle_id) == []
    assert chunks_of(db, cycle_id)[0].status == ChunkStatus.pending
    assert query(db, "SELECT accounts, chunks_stored FROM cycles WHERE id = :c",
                 c=cycle_id)[0] == (0, 0)  # fmt: skip


def test_rule_breakers_are_set_aside_with_their_reasons_when_nicknames_are_clean(
    db: Settings,
) -> None:
    """With no odd nickname SQL leaves the nickname rules out; the others still apply."""
    with session_scope(db) as s:
        cycle_id = create_cycle(s, db, next(_dates)).cycle_id
    chunk = chunks_of(db, cycle_id)[1]
    msg = result_for(chunk)
    rows = msg["rows"]
    col = COLUMNS.index
    rows[1][col("wins")] = rows[1][col("battles")] + 1
    rows[2][col("spotted")] = -1
    rows[3][col("battles")] = 2_000_001
    expected = validate_result(msg)
    with session_scope(db) as s:
        report = store_result(s, msg)
    assert (report.outcome, report.accounts, report.set_aside) == (
        StoreOutcome.stored, len(rows) - 3, 3)  # fmt: skip
    aside = query(db, "SELECT account_id, reason FROM set_aside_rows WHERE cycle_id = :c "
                      "ORDER BY account_id", c=cycle_id)  # fmt: skip
    assert [tuple(a) for a in aside] == [(s.account_id, s.reason) for s in expected.set_aside]
    assert [r[0] for r in staged(db, cycle_id)] == [r[0] for r in expected.rows]
    # an empty nickname makes SQL check nicknames: set aside with the Python reason
    msg2 = result_for(chunks_of(db, cycle_id)[2])
    msg2["rows"][0][1] = ""
    expected2 = validate_result(msg2)
    with session_scope(db) as s:
        assert store_result(s, msg2).set_aside == 1
    aside2 = query(db, "SELECT reason FROM set_aside_rows WHERE chunk_id = :k",
                   k=msg2["chunk_id"])  # fmt: skip
    assert [a[0] for a in aside2] == [expected2.set_aside[0].reason]
    # a value no column holds (past int8): the COPY refuses, the Python rules set it aside
    msg3 = result_for(chunks_of(db, cycle_id)[3])
    msg3["rows"][2][COLUMNS.index("spotted")] = 2**63
    expected3 = validate_result(msg3)
    with session_scope(db) as s:
        assert store_result(s, msg3).set_aside == 1
    aside3 = query(db, "SELECT account_id, reason FROM set_aside_rows WHERE chunk_id = :k",
                   k=msg3["chunk_id"])  # fmt: skip
    assert [tuple(a) for a in aside3] == [(s.account_id, s.reason) for s in expected3.set_aside]
    assert len(staged(db, cycle_id)) == (len(rows) - 3) + (len(msg2["rows"]) - 1) + (
        len(msg3["rows"]) - 1)  # fmt: skip


def test_a_bool_in_a_later_batch_aborts_the_copy_already_under_way(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The type check runs between the COPY's batches: rows already sent leave nothing."""
    monkeypatch.setattr(staging, "_BATCH", 5)
    with session_scope(db) as s:
        cycle_id = create_cycle(s, db, next(_dates)).cycle_id
    msg = result_for(chunks_of(db, cycle_id)[0])
    msg["rows"][22][COLUMNS.index("losses")] = False
    with pytest.raises(InvalidResult, match="not an integer"), session_scope(db) as s:
        store_result(s, msg)
    assert staged(db, cycle_id) == []
    # the same rows without the bool: stored whole, batch after batch
    msg["rows"][22][COLUMNS.index("losses")] = 0
    with session_scope(db) as s:
        assert store_result(s, msg).accounts == len(msg["rows"])
    assert [r[0] for r in staged(db, cycle_id)] == [r[0] for r in msg["rows"]]


def test_checks_between_batches_see_the_whole_result(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id repeated across batches refuses the result; an odd nickname in a later batch
    sends the rows again with the nickname rules, the rows already sent leaving nothing."""
    monkeypatch.setattr(staging, "_BATCH", 5)
    with session_scope(db) as s:
        cycle_id = create_cycle(s, db, next(_dates)).cycle_id
    chunks = chunks_of(db, cycle_id)
    twice = result_for(chunks[0])
    twice["rows"][17][0] = twice["rows"][2][0]  # batches 0 and 3
    with pytest.raises(InvalidResult, match="twice"), session_scope(db) as s:
        store_result(s, twice)
    assert staged(db, cycle_id) == []
    odd = result_for(chunks[1])
    odd["rows"][23][COLUMNS.index("nickname")] = "tab\there"
    odd["rows"][4][COLUMNS.index("wins")] = odd["rows"][4][COLUMNS.index("battles")] + 1
    expected = validate_result(odd)
    with session_scope(db) as s:
        report = store_result(s, odd)
    assert (report.accounts, report.set_aside) == (len(odd["rows"]) - 2, 2)
    aside = query(db, "SELECT account_id, reason FROM set_aside_rows WHERE chunk_id = :k "
                      "ORDER BY account_id", k=odd["chunk_id"])  # fmt: skip
    assert [tuple(a) for a in aside] == [(s.account_id, s.reason) for s in expected.set_aside]
    assert [r[0] for r in staged(db, cycle_id)] == [r[0] for r in expected.rows]


def test_rows_in_id_order_take_the_set_based_path_and_others_the_python_rules(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetcher sends its rows in id order: the COPY takes them as they are. Rows out of
    order (within a batch or across two) are judged by the Python rules, the same rows
    stored."""
    monkeypatch.setattr(staging, "_BATCH", 5)
    judged: list[int] = []
    python_rules = store._store_checked_in_python

    def spy(session: Any, raw: dict[str, Any], now: int) -> Any:
        judged.append(raw["chunk_id"])
        return python_rules(session, raw, now)

    monkeypatch.setattr(store, "_store_checked_in_python", spy)
    with session_scope(db) as s:
        cycle_id = create_cycle(s, db, next(_dates)).cycle_id
    chunks = chunks_of(db, cycle_id)
    results = [result_for(chunk) for chunk in chunks[:3]]
    for msg, (a, b) in zip(results[1:], [(1, 2), (4, 5)], strict=True):
        msg["rows"][a], msg["rows"][b] = msg["rows"][b], msg["rows"][a]
    for msg in results:
        with session_scope(db) as s:
            assert store_result(s, msg).accounts == len(msg["rows"])
    assert judged == [results[1]["chunk_id"], results[2]["chunk_id"]]
    assert [r[0] for r in staged(db, cycle_id)] == sorted(
        r[0] for msg in results for r in msg["rows"])  # fmt: skip
