"""store_result and mark_rejected on real PostgreSQL: once-only, all-or-nothing, the counter.

One database for the module; every test records its own cycle (its own date), so tests
never see each other's chunks.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text

from battletracker.db import engine_for, session_scope, sessionmaker_for
from battletracker.models import Chunk, ChunkStatus, Cycle, CycleStatus
from battletracker.pipeline.coordinator import create_cycle
from battletracker.pipeline.result import COLUMNS, RESULT_VERSION, InvalidResult
from battletracker.pipeline.store import StoreOutcome, mark_rejected, store_result
from battletracker.settings import IdRange, Settings
from tests.common.rows import counters_for

pytestmark = pytest.mark.integration

XBOX = IdRange(5_000, 5_299)  # 3 chunks of 100
PS = IdRange(1_073_740_000, 1_073_740_199)  # 2 chunks of 100
_dates = (dt.date(2030, 1, 1) + dt.timedelta(days=i) for i in itertools.count())


@pytest.fixture(scope="module")
def db(module_db_settings: Settings) -> Settings:
    return module_db_settings.replace(xbox_range=XBOX, ps_range=PS, chunk_size=100)


@pytest.fixture
def cycle(db: Settings) -> Iterator[tuple[int, list[Chunk]]]:
    """A fresh cycle of 5 pending chunks: (cycle id, chunks in id order)."""
    with session_scope(db) as s:
        start = create_cycle(s, db, next(_dates))
    yield start.cycle_id, chunks_of(db, start.cycle_id)


def chunks_of(db: Settings, cycle_id: int) -> list[Chunk]:
    with session_scope(db) as s:
        return list(
            s.execute(select(Chunk).where(Chunk.cycle_id == cycle_id).order_by(Chunk.id)).scalars()
        )


def cycle_row(db: Settings, cycle_id: int) -> Cycle:
    with session_scope(db) as s:
        c = s.get(Cycle, cycle_id)
        assert c is not None
        return c


def staged(db: Settings, cycle_id: int) -> list[tuple[Any, ...]]:
    with engine_for(db).connect() as conn:
        return [tuple(r) for r in conn.execute(
            text(f"SELECT {', '.join(COLUMNS)} FROM staged_accounts WHERE cycle_id = :c "
                 "ORDER BY account_id"), {"c": cycle_id})]  # fmt: skip


def result_for(chunk: Chunk, every: int = 3, **edit: Any) -> dict[str, Any]:
    """A valid result for ``chunk``: an account on every ``every``-th id."""
    rows = [
        [i, f"tanker{i}", 1_500_000_000, 1_700_000_000 + i % 10_000, *counters_for(i % 997, i)]
        for i in range(chunk.first_id, chunk.last_id + 1, every)
    ]
    msg = {
        "v": RESULT_VERSION, "cycle_id": chunk.cycle_id, "chunk_id": chunk.id,
        "platform": chunk.platform.value, "first_id": chunk.first_id, "last_id": chunk.last_id,
        "columns": list(COLUMNS), "rows": rows,
        "empty": chunk.last_id - chunk.first_id + 1 - len(rows),
        "node": "vol-1", "seconds": 2.5,
    }  # fmt: skip
    msg.update(edit)
    return msg


def store(db: Settings, raw: object) -> Any:
    with session_scope(db) as s:
        return store_result(s, raw)


# -- the happy path ------------------------------------------------------------------------


def test_store_writes_staging_marks_chunk_and_counts(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    msg = result_for(chunks[0])
    report = store(db, msg)
    assert report.outcome == StoreOutcome.stored
    assert (report.chunk_id, report.cycle_id, report.accounts) == (chunks[0].id, cid, 34)
    assert report.cycle_complete is False
    assert staged(db, cid) == [tuple(r) for r in msg["rows"]]
    chunk = chunks_of(db, cid)[0]
    assert chunk.status == ChunkStatus.stored
    assert (chunk.accounts, chunk.node, chunk.fetch_seconds) == (34, "vol-1", 2.5)
    assert chunk.stored_at is not None
    c = cycle_row(db, cid)
    assert (c.chunks_stored, c.chunks_total, c.accounts) == (1, 5, 34)
    assert c.status == CycleStatus.fetching


def test_nicknames_with_copy_special_characters_survive(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    msg = result_for(chunks[1], every=50)
    msg["rows"][0][1] = "back\\slash \\N"
    msg["rows"][1][1] = "Ünïcödé 名前"
    store(db, msg)
    assert [r[1] for r in staged(db, cid)] == ["back\\slash \\N", "Ünïcödé 名前"]


def test_an_empty_chunk_is_stored(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    report = store(db, result_for(chunks[4], rows=[], empty=100))
    assert (report.outcome, report.accounts) == (StoreOutcome.stored, 0)
    assert chunks_of(db, cid)[4].status == ChunkStatus.stored
    assert cycle_row(db, cid).chunks_stored == 1


# -- idempotence ---------------------------------------------------------------------------


def test_same_result_twice_is_stored_once(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    msg = result_for(chunks[2])
    first, second = store(db, msg), store(db, msg)
    assert first.outcome == StoreOutcome.stored
    assert second.outcome == StoreOutcome.duplicate
    assert second.accounts == 0 and second.cycle_complete is False
    assert len(staged(db, cid)) == len(msg["rows"])
    c = cycle_row(db, cid)
    assert (c.chunks_stored, c.accounts) == (1, len(msg["rows"]))


def test_a_different_result_for_a_stored_chunk_is_ignored(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    store(db, result_for(chunks[0], every=3))
    before = staged(db, cid)
    assert store(db, result_for(chunks[0], every=2)).outcome == StoreOutcome.duplicate
    assert staged(db, cid) == before


def test_concurrent_stores_of_one_result_store_it_once(db: Settings, cycle: Any) -> None:
    """A holds the chunk's lock until B is seen waiting on it; then B must find it stored."""
    cid, chunks = cycle
    msg = result_for(chunks[3])
    outcomes: dict[str, StoreOutcome] = {}
    errors: list[BaseException] = []
    a_stored = threading.Event()

    def a() -> None:
        try:
            with sessionmaker_for(db).begin() as s:
                outcomes["a"] = store_result(s, msg).outcome
                a_stored.set()
                _wait_for_lock_waiter(db)
        except BaseException as exc:
            errors.append(exc)
            a_stored.set()

    def b() -> None:
        a_stored.wait(10)
        try:
            with sessionmaker_for(db).begin() as s:
                outcomes["b"] = store_result(s, msg).outcome
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert outcomes == {"a": StoreOutcome.stored, "b": StoreOutcome.duplicate}
    assert len(staged(db, cid)) == len(msg["rows"])
    assert cycle_row(db, cid).chunks_stored == 1


def test_many_concurrent_deliveries_store_once(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    msg = result_for(chunks[1])
    barrier = threading.Barrier(6)
    outcomes: list[StoreOutcome] = []

    def deliver() -> None:
        barrier.wait(10)
        outcomes.append(store(db, msg).outcome)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == [StoreOutcome.duplicate] * 5 + [StoreOutcome.stored]
    assert len(staged(db, cid)) == len(msg["rows"])
    assert cycle_row(db, cid).chunks_stored == 1


def _wait_for_lock_waiter(db: Settings, timeout: float = 10) -> None:
    """Block until another backend of this database waits for a lock."""
    deadline = time.monotonic() + timeout
    with engine_for(db).connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )).scalar_one()  # fmt: skip
            if waiting:
                return
            conn.rollback()
            time.sleep(0.02)
    raise TimeoutError("the second store never waited for the chunk lock")


# -- results that do not match their chunk -------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda m, other: {"chunk_id": 2**30}, "does not exist"),
        (lambda m, other: {"cycle_id": m["cycle_id"] + 10_000}, "span differ"),
        # the span of another chunk of the same cycle under this chunk's id
        (lambda m, other: {"chunk_id": other.id}, "span differ"),
    ],
)
def test_result_for_the_wrong_chunk_is_invalid_and_stores_nothing(
    db: Settings, cycle: Any, edit: Any, why: str
) -> None:
    cid, chunks = cycle
    msg = result_for(chunks[0])
    msg.update(edit(msg, chunks[1]))
    with pytest.raises(InvalidResult, match=why):
        store(db, msg)
    assert staged(db, cid) == []
    assert {c.status for c in chunks_of(db, cid)} == {ChunkStatus.pending}
    c = cycle_row(db, cid)
    assert (c.chunks_stored, c.accounts) == (0, 0)


def test_a_narrower_span_is_invalid(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    ch = chunks[0]
    msg = result_for(ch, every=1, last_id=ch.last_id - 50)
    msg["rows"] = msg["rows"][:50]
    msg["empty"] = 0
    with pytest.raises(InvalidResult, match="span differ"):
        store(db, msg)
    assert staged(db, cid) == []


def test_invalid_content_stores_nothing(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    msg = result_for(chunks[0])
    msg["rows"][-1][4] = "-5"  # a type no fetcher sends: the whole result is refused
    with pytest.raises(InvalidResult, match="counter battles"):
        store(db, msg)
    assert staged(db, cid) == []
    assert cycle_row(db, cid).chunks_stored == 0


def set_aside_rows(db: Settings, cycle_id: int) -> list[tuple[Any, ...]]:
    with engine_for(db).connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT chunk_id, account_id, kind, reason, row, node FROM set_aside_rows "
            "WHERE cycle_id = :c ORDER BY account_id"), {"c": cycle_id})]  # fmt: skip


def test_odd_rows_are_set_aside_and_the_rest_of_the_chunk_is_stored(
    db: Settings, cycle: Any
) -> None:
    """Each rule of the game, broken by one row; the chunk still stores, the night goes on."""
    cid, chunks = cycle
    msg = result_for(chunks[1], every=5)
    rows = msg["rows"]
    col = COLUMNS.index
    odd = {
        rows[0][0]: ("battles", 2**53 - 1, "battles .* not within"),
        rows[1][0]: ("wins", rows[1][col("battles")] + 1, "wins .* above"),
        rows[2][0]: ("hits", rows[2][col("shots")] + 1, "hits .* above shots"),
        rows[3][0]: ("last_battle_time", 1_400_000_000, "last_battle_time .* not within"),
        rows[4][0]: ("nickname", "line\nbreak", "control character U\\+000A"),
        rows[5][0]: ("damage_dealt", -1, "damage_dealt -1 is negative"),
    }
    for r in rows:
        if r[0] in odd:
            name, value, _ = odd[r[0]]
            r[col(name)] = value
    # nicknames the API really returns are stored as they are
    rows[6][1], rows[7][1] = "Gamer Tag\u00a0x", "\u200b\U0001fafa 名前"
    report = store(db, msg)
    assert (report.outcome, report.accounts, report.set_aside) == (
        StoreOutcome.stored, len(rows) - len(odd), len(odd))  # fmt: skip
    assert [r[0] for r in staged(db, cid)] == [r[0] for r in rows if r[0] not in odd]
    assert [r[1] for r in staged(db, cid)][:2] == ["Gamer Tag\u00a0x", "\u200b\U0001fafa 名前"]
    recorded = set_aside_rows(db, cid)
    assert [r[1] for r in recorded] == sorted(odd)
    for chunk_id, account_id, kind, reason, row, node in recorded:
        assert (chunk_id, kind, node) == (chunks[1].id, "rule", "vol-1")
        assert re.search(odd[account_id][2], reason), reason
        assert row == next(r for r in rows if r[0] == account_id)
    c = cycle_row(db, cid)
    assert (c.chunks_stored, c.set_aside, c.rejected_results) == (1, len(odd), 0)
    assert chunks_of(db, cid)[1].status == ChunkStatus.stored


def test_nul_and_lone_surrogate_nicknames_are_set_aside_not_a_crash(
    db: Settings, cycle: Any
) -> None:
    """Text PostgreSQL cannot hold (NUL, a lone surrogate) is set aside, escaped, visibly."""
    cid, chunks = cycle
    msg = result_for(chunks[2], every=5)
    rows = msg["rows"]
    rows[0][1], rows[1][1] = "nul\x00name", "half\ud800"
    report = store(db, msg)
    assert (report.outcome, report.accounts, report.set_aside) == (
        StoreOutcome.stored, len(rows) - 2, 2)  # fmt: skip
    recorded = {r[1]: r for r in set_aside_rows(db, cid)}
    assert recorded[rows[0][0]][4][1] == "nul\\u0000name"
    assert recorded[rows[1][0]][4][1] == "half\\ud800"
    assert "U+0000" in recorded[rows[0][0]][3]
    assert [r[0] for r in staged(db, cid)] == [r[0] for r in rows[2:]]


def test_a_result_for_a_missed_chunk_is_late_and_not_stored(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    with engine_for(db).begin() as conn:
        conn.execute(text("UPDATE chunks SET status = 'missed' WHERE id = :i"), {"i": chunks[0].id})
    report = store(db, result_for(chunks[0]))
    assert report.outcome == StoreOutcome.late
    assert staged(db, cid) == []
    assert chunks_of(db, cid)[0].status == ChunkStatus.missed
    with session_scope(db) as s:  # a bad copy does not flip it back either
        mark_rejected(s, result_for(chunks[0]), "junk")
    assert chunks_of(db, cid)[0].status == ChunkStatus.missed
    assert cycle_row(db, cid).chunks_stored == 0


# -- rejection -----------------------------------------------------------------------------


def test_mark_rejected_flags_an_unstored_chunk(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    with session_scope(db) as s:
        report = mark_rejected(s, result_for(chunks[2]), "counter battles = -5")
    assert (report.outcome, report.chunk_id, report.cycle_id) == (
        StoreOutcome.rejected, chunks[2].id, cid)  # fmt: skip
    chunk = chunks_of(db, cid)[2]
    assert chunk.status == ChunkStatus.rejected
    assert chunk.error is not None and "counter battles = -5" in chunk.error
    assert cycle_row(db, cid).rejected_results == 1
    # a good result afterwards is stored normally
    assert store(db, result_for(chunks[2])).outcome == StoreOutcome.stored
    chunk = chunks_of(db, cid)[2]
    assert (chunk.status, chunk.error) == (ChunkStatus.stored, None)


def test_mark_rejected_never_touches_a_stored_chunk(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    msg = result_for(chunks[0])
    store(db, msg)
    before = chunks_of(db, cid)[0]
    with session_scope(db) as s:
        mark_rejected(s, msg, "a late bad copy")
    after = chunks_of(db, cid)[0]
    assert (after.status, after.error, after.accounts, after.stored_at) == (
        before.status, before.error, before.accounts, before.stored_at)  # fmt: skip
    assert len(staged(db, cid)) == len(msg["rows"])
    c = cycle_row(db, cid)
    assert (c.chunks_stored, c.rejected_results) == (1, 1)


@pytest.mark.parametrize(
    "raw", [None, "junk", {"chunk_id": "1"}, {"chunk_id": True}, {"chunk_id": -1},
            {"chunk_id": 2**40}, {"chunk_id": 2**30}],
)  # fmt: skip
def test_mark_rejected_of_garbage_changes_nothing(db: Settings, cycle: Any, raw: object) -> None:
    cid, _ = cycle
    with session_scope(db) as s:
        report = mark_rejected(s, raw, "garbage")
    assert report.outcome == StoreOutcome.rejected and report.chunk_id is None
    assert {c.status for c in chunks_of(db, cid)} == {ChunkStatus.pending}
    assert cycle_row(db, cid).rejected_results == 0


# -- completion ----------------------------------------------------------------------------


def test_last_store_completes_the_cycle_exactly_once(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    reports = [store(db, result_for(ch)) for ch in reversed(chunks)]
    assert [r.cycle_complete for r in reports] == [False] * 4 + [True]
    c = cycle_row(db, cid)
    assert c.status == CycleStatus.diffing
    assert (c.chunks_stored, c.chunks_total) == (5, 5)
    assert c.fetched_at is not None
    changed_at = c.status_changed_at
    # a redelivery afterwards completes nothing and moves nothing
    again = store(db, result_for(chunks[0]))
    assert (again.outcome, again.cycle_complete) == (StoreOutcome.duplicate, False)
    c = cycle_row(db, cid)
    assert (c.status, c.chunks_stored, c.status_changed_at) == (
        CycleStatus.diffing, 5, changed_at)  # fmt: skip


def test_concurrent_last_stores_complete_once(db: Settings, cycle: Any) -> None:
    """The final chunks stored in parallel: exactly one store sees the cycle complete."""
    cid, chunks = cycle
    for ch in chunks[:2]:
        store(db, result_for(ch))
    barrier = threading.Barrier(3)
    reports: list[Any] = []

    def deliver(ch: Chunk) -> None:
        barrier.wait(10)
        reports.append(store(db, result_for(ch)))

    threads = [threading.Thread(target=deliver, args=(ch,)) for ch in chunks[2:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.cycle_complete for r in reports) == [False, False, True]
    assert cycle_row(db, cid).status == CycleStatus.diffing


# -- a node's notices: progress and hold -----------------------------------------------------


def notice(chunk: Chunk, **kind: Any) -> dict[str, Any]:
    return {"v": RESULT_VERSION, "cycle_id": chunk.cycle_id, "chunk_id": chunk.id,
            "platform": chunk.platform.value, "first_id": chunk.first_id,
            "last_id": chunk.last_id, "node": "vol-1", **kind}  # fmt: skip


def test_progress_and_hold_notices_move_only_a_dispatched_chunk(db: Settings, cycle: Any) -> None:
    cid, chunks = cycle
    with engine_for(db).begin() as conn:
        conn.execute(text("UPDATE chunks SET status = 'dispatched' WHERE cycle_id = :c"),
                     {"c": cid})  # fmt: skip
    assert store(db, notice(chunks[0], progress=True)).outcome == StoreOutcome.progress
    assert store(db, notice(chunks[1], held="API error 405 METHOD_DISABLED")).outcome == (
        StoreOutcome.held)
    after = chunks_of(db, cid)
    assert after[0].status == ChunkStatus.dispatched and after[0].progress_at is not None
    assert after[1].status == ChunkStatus.held and "METHOD_DISABLED" in (after[1].error or "")
    with engine_for(db).connect() as conn:
        wait = conn.execute(text("SELECT not_before - now() FROM chunks WHERE id = :i"),
                            {"i": chunks[1].id}).scalar_one()  # fmt: skip
    assert dt.timedelta(minutes=29) < wait <= dt.timedelta(minutes=30)
    # a stored chunk ignores notices; nothing of a notice is ever staged
    store(db, result_for(chunks[2]))
    assert store(db, notice(chunks[2], held="late")).outcome == StoreOutcome.duplicate
    assert chunks_of(db, cid)[2].status == ChunkStatus.stored
    assert cycle_row(db, cid).chunks_stored == 1


@pytest.mark.parametrize(
    "kind", [{"progress": 1}, {"held": 5}, {"held": "x" * 501}, {"progress": True, "held": "x"},
             {"progress": True, "rows": []}],
)  # fmt: skip
def test_malformed_notices_are_invalid(db: Settings, cycle: Any, kind: dict[str, Any]) -> None:
    _, chunks = cycle
    with pytest.raises(InvalidResult, match="notice"):
        store(db, notice(chunks[0], **kind))
