"""create_cycle, dispatch_chunks and the reaper on real PostgreSQL.

One database for the module. Each test records its own cycle; an autouse fixture closes
the cycles of earlier tests first, because the reaper looks at every fetching cycle.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select, text, update

from battletracker.db import engine_for, session_scope, sessionmaker_for
from battletracker.models import Chunk, ChunkStatus, Cycle, CycleStatus, Platform, PlatformRange
from battletracker.pipeline.coordinator import create_cycle, cycle_date_for, dispatch_chunks
from battletracker.pipeline.reaper import reap
from battletracker.pipeline.result import ChunkSpec
from battletracker.pipeline.stages import retry_cycle
from battletracker.settings import IdRange, Settings

pytestmark = pytest.mark.integration

XBOX = IdRange(5_000, 5_349)  # 4 chunks, the last one short (5300-5349)
PS = IdRange(1_073_740_000, 1_073_740_199)  # 2 chunks
N_CHUNKS = 6
STALE = 60
MAX_ATTEMPTS = 3
_dates = (dt.date(2031, 1, 1) + dt.timedelta(days=i) for i in itertools.count())


@pytest.fixture(scope="module")
def db(module_db_settings: Settings) -> Settings:
    return module_db_settings.replace(
        xbox_range=XBOX, ps_range=PS, chunk_size=100,
        stale_after_seconds=STALE, max_attempts=MAX_ATTEMPTS,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _close_earlier_cycles(db: Settings) -> None:
    with session_scope(db) as s:
        s.execute(update(Cycle).values(status=CycleStatus.done))
        s.execute(text("UPDATE platform_ranges SET max_id = :x WHERE platform = 'xbox'"),
                  {"x": XBOX.max_id})  # fmt: skip


class Collector:
    """A publish callback that records what it was given."""

    def __init__(self) -> None:
        self.specs: list[ChunkSpec] = []
        self.lock = threading.Lock()

    def __call__(self, specs: Sequence[ChunkSpec]) -> None:
        with self.lock:
            self.specs.extend(specs)

    @property
    def ids(self) -> list[int]:
        return [s.chunk_id for s in self.specs]


def new_cycle(db: Settings) -> int:
    with session_scope(db) as s:
        return create_cycle(s, db, next(_dates)).cycle_id


def chunks_of(db: Settings, cycle_id: int) -> list[Chunk]:
    with session_scope(db) as s:
        return list(
            s.execute(select(Chunk).where(Chunk.cycle_id == cycle_id).order_by(Chunk.id)).scalars()
        )


def sql(db: Settings, statement: str, **params: Any) -> None:
    with engine_for(db).begin() as conn:
        conn.execute(text(statement), params)


def run_reap(db: Settings, ready: int | None) -> tuple[Any, Collector]:
    publish = Collector()
    with session_scope(db) as s:
        report = reap(s, db, publish, fetch_queue_ready=ready)
    return report, publish


def dispatch_all(db: Settings, cycle_id: int) -> Collector:
    publish = Collector()
    with session_scope(db) as s:
        dispatch_chunks(s, publish, where=[Chunk.cycle_id == cycle_id,
                                           Chunk.status == ChunkStatus.pending])  # fmt: skip
    return publish


# -- create_cycle --------------------------------------------------------------------------


def test_create_cycle_twice_for_a_date_changes_nothing(db: Settings) -> None:
    day = next(_dates)
    with session_scope(db) as s:
        first = create_cycle(s, db, day)
    with session_scope(db) as s:
        second = create_cycle(s, db, day)
    assert first.created and not second.created
    assert (second.cycle_id, second.date, second.chunks) == (first.cycle_id, day, N_CHUNKS)
    with engine_for(db).connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM chunks WHERE cycle_id = :c"),
                         {"c": first.cycle_id}).scalar_one()  # fmt: skip
        cycles = conn.execute(text("SELECT count(*) FROM cycles WHERE date = :d"),
                              {"d": day}).scalar_one()  # fmt: skip
    assert (n, cycles) == (N_CHUNKS, 1)


def test_concurrent_create_cycle_records_one_cycle(db: Settings) -> None:
    day = next(_dates)
    barrier = threading.Barrier(4)
    starts: list[Any] = []

    def start() -> None:
        barrier.wait(10)
        with session_scope(db) as s:
            starts.append(create_cycle(s, db, day))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(s.created for s in starts) == [False, False, False, True]
    assert len({s.cycle_id for s in starts}) == 1
    assert len(chunks_of(db, starts[0].cycle_id)) == N_CHUNKS


def test_chunks_cover_both_ranges_exactly_once(db: Settings) -> None:
    cid = new_cycle(db)
    chunks = chunks_of(db, cid)
    for platform, rng in ((Platform.xbox, XBOX), (Platform.ps, PS)):
        spans = sorted((c.first_id, c.last_id) for c in chunks if c.platform == platform)
        assert spans[0][0] == rng.min_id and spans[-1][1] == rng.max_id
        for (_, last), (first, _) in itertools.pairwise(spans):
            assert first == last + 1, f"{platform}: gap or overlap at {last}..{first}"
        assert all(0 < b - a + 1 <= 100 for a, b in spans)
    assert [(c.first_id, c.last_id) for c in chunks if c.platform == Platform.xbox][-1] == (
        5300, 5349)  # fmt: skip
    assert {(c.status, c.attempts) for c in chunks} == {(ChunkStatus.pending, 0)}
    with session_scope(db) as s:
        c = s.get(Cycle, cid)
        assert c is not None
        assert (c.status, c.chunks_total, c.chunks_stored) == (CycleStatus.fetching, N_CHUNKS, 0)
        assert c.ids_total == (XBOX.max_id - XBOX.min_id + 1) + (PS.max_id - PS.min_id + 1)


def test_cycles_use_the_stored_ranges_not_the_settings(db: Settings) -> None:
    sql(db, "UPDATE platform_ranges SET max_id = 5449 WHERE platform = 'xbox'")
    chunks = chunks_of(db, new_cycle(db))
    assert max(c.last_id for c in chunks if c.platform == Platform.xbox) == 5449
    with session_scope(db) as s:  # seeded once: the settings never overwrite the table
        r = s.get(PlatformRange, Platform.xbox)
        assert r is not None and r.max_id == 5449


@pytest.mark.parametrize(
    ("now", "day"),
    [(dt.datetime(2026, 3, 2, 2, 30, tzinfo=dt.UTC), dt.date(2026, 3, 1)),
     (dt.datetime(2026, 3, 2, 13, 0, tzinfo=dt.UTC), dt.date(2026, 3, 2)),
     (dt.datetime(2026, 3, 2, 2, 30), dt.date(2026, 3, 1))],
)  # fmt: skip
def test_cycle_date_is_the_day_the_battles_were_played(now: dt.datetime, day: dt.date) -> None:
    assert cycle_date_for(now, Settings()) == day


# -- dispatch_chunks -----------------------------------------------------------------------


def test_dispatch_publishes_and_marks_chunks_dispatched(db: Settings) -> None:
    cid = new_cycle(db)
    publish = dispatch_all(db, cid)
    chunks = chunks_of(db, cid)
    assert sorted(publish.ids) == [c.id for c in chunks]
    assert all(c.status == ChunkStatus.dispatched and c.attempts == 1 and c.dispatched_at
               for c in chunks)  # fmt: skip
    xbox_first = next(c for c in chunks if c.platform == Platform.xbox)
    spec = next(s for s in publish.specs if s.chunk_id == xbox_first.id)
    assert (spec.cycle_id, spec.platform, spec.first_id, spec.last_id) == (
        cid, "xbox", XBOX.min_id, XBOX.min_id + 99)  # fmt: skip
    assert dispatch_all(db, cid).specs == []  # nothing pending any more


def test_concurrent_dispatchers_skip_locked_chunks(db: Settings) -> None:
    """A holds its chunks (publishing, uncommitted) while B dispatches: B skips them."""
    cid = new_cycle(db)
    pending = [Chunk.cycle_id == cid, Chunk.status == ChunkStatus.pending]
    a_publishing, b_done = threading.Event(), threading.Event()
    published: dict[str, list[int]] = {}

    def a() -> None:
        def slow_publish(specs: Sequence[ChunkSpec]) -> None:
            published["a"] = [s.chunk_id for s in specs]
            a_publishing.set()
            b_done.wait(20)

        with sessionmaker_for(db).begin() as s:
            dispatch_chunks(s, slow_publish, where=pending, limit=4)

    def b() -> None:
        a_publishing.wait(20)
        publish = Collector()
        with sessionmaker_for(db).begin() as s:
            dispatch_chunks(s, publish, where=pending)
        published["b"] = publish.ids
        b_done.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(published["a"]) == 4 and len(published["b"]) == N_CHUNKS - 4
    assert not set(published["a"]) & set(published["b"])
    assert {c.attempts for c in chunks_of(db, cid)} == {1}


def test_racing_dispatchers_never_publish_a_chunk_twice(db: Settings) -> None:
    cids = [new_cycle(db) for _ in range(3)]
    all_ids = sorted(c.id for cid in cids for c in chunks_of(db, cid))
    publish = Collector()
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait(10)
        while True:
            with sessionmaker_for(db).begin() as s:
                n = dispatch_chunks(s, publish, where=[Chunk.cycle_id.in_(cids),
                                                       Chunk.status == ChunkStatus.pending],
                                    limit=2)  # fmt: skip
            if not n:
                return

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(publish.ids) == all_ids  # each exactly once


# -- the reaper ----------------------------------------------------------------------------


def test_pending_chunks_of_an_old_cycle_are_published(db: Settings) -> None:
    fresh = new_cycle(db)
    old = new_cycle(db)
    sql(db, "UPDATE cycles SET started_at = now() - interval '5 minutes' WHERE id = :c", c=old)
    report, publish = run_reap(db, ready=3)
    # the fresh cycle's coordinator is still about to publish: leave it alone
    assert sorted(publish.ids) == [c.id for c in chunks_of(db, old)]
    assert report.republished == N_CHUNKS
    assert {c.status for c in chunks_of(db, old)} == {ChunkStatus.dispatched}
    assert {c.status for c in chunks_of(db, fresh)} == {ChunkStatus.pending}
    assert run_reap(db, ready=0)[1].specs == []  # once only


def test_rejected_chunks_are_republished(db: Settings) -> None:
    cid = new_cycle(db)
    dispatch_all(db, cid)
    rejected = chunks_of(db, cid)[1]
    sql(db, "UPDATE chunks SET status = 'rejected' WHERE id = :i", i=rejected.id)
    for ready in (5, None):  # whatever the queue holds
        sql(db, "UPDATE chunks SET status = 'rejected' WHERE id = :i", i=rejected.id)
        report, publish = run_reap(db, ready=ready)
        assert publish.ids == [rejected.id] and report.republished == 1
    chunk = chunks_of(db, cid)[1]
    assert (chunk.status, chunk.attempts) == (ChunkStatus.dispatched, 3)


@pytest.mark.parametrize(("ready", "republished"), [(0, True), (4, False), (None, False)])
def test_stale_dispatched_chunks_only_when_the_fetch_queue_is_empty(
    db: Settings, ready: int | None, republished: bool
) -> None:
    cid = new_cycle(db)
    dispatch_all(db, cid)
    stale, recent = chunks_of(db, cid)[:2]
    sql(db, "UPDATE chunks SET dispatched_at = now() - make_interval(secs => :s) WHERE id = :i",
        s=STALE + 30, i=stale.id)  # fmt: skip
    report, publish = run_reap(db, ready=ready)
    assert publish.ids == ([stale.id] if republished else [])
    assert report.republished == int(republished)
    assert chunks_of(db, cid)[0].attempts == (2 if republished else 1)
    assert recent.id not in publish.ids


def test_stored_failed_and_closed_cycle_chunks_are_left_alone(db: Settings) -> None:
    cid = new_cycle(db)
    dispatch_all(db, cid)
    chunks = chunks_of(db, cid)
    sql(db, "UPDATE chunks SET status = 'stored' WHERE id = :i", i=chunks[0].id)
    sql(db, "UPDATE chunks SET status = 'failed' WHERE id = :i", i=chunks[1].id)
    sql(db, "UPDATE chunks SET dispatched_at = now() - interval '1 hour' WHERE cycle_id = :c",
        c=cid)  # fmt: skip
    _, publish = run_reap(db, ready=0)
    assert chunks[0].id not in publish.ids and chunks[1].id not in publish.ids
    assert len(publish.ids) == N_CHUNKS - 2
    # a cycle that left ``fetching`` is never reaped
    other = new_cycle(db)
    sql(db, "UPDATE chunks SET status = 'rejected' WHERE cycle_id = :c", c=other)
    sql(db, "UPDATE cycles SET status = 'done' WHERE id = :c", c=other)
    assert run_reap(db, ready=0)[1].specs == []


def test_chunks_beyond_max_attempts_are_marked_failed(db: Settings) -> None:
    cid = new_cycle(db)
    dispatch_all(db, cid)
    a, b, c, d = chunks_of(db, cid)[:4]
    # a: rejected on its last attempt; b: rejected with one attempt left;
    # c: stale on its last attempt; d: stale on its last attempt but the queue is unknown
    sql(db, "UPDATE chunks SET status = 'rejected', attempts = :n, error = 'bad counters' "
            "WHERE id = :i", n=MAX_ATTEMPTS, i=a.id)  # fmt: skip
    sql(db, "UPDATE chunks SET status = 'rejected', attempts = :n WHERE id = :i",
        n=MAX_ATTEMPTS - 1, i=b.id)  # fmt: skip
    sql(db, "UPDATE chunks SET attempts = :n, dispatched_at = now() - interval '1 hour' "
            "WHERE id IN (:i, :j)", n=MAX_ATTEMPTS, i=c.id, j=d.id)  # fmt: skip
    report, publish = run_reap(db, ready=0)
    after = {ch.id: ch for ch in chunks_of(db, cid)}
    assert report.failed == 3
    assert (after[a.id].status, after[a.id].error) == (ChunkStatus.failed, "bad counters")
    assert (after[c.id].status, after[c.id].error) == (ChunkStatus.failed, "attempts exhausted")
    assert after[d.id].status == ChunkStatus.failed
    assert publish.ids == [b.id] and after[b.id].attempts == MAX_ATTEMPTS
    # with the queue still holding messages a stale chunk is waiting, not lost: not failed
    other = new_cycle(db)
    dispatch_all(db, other)
    e = chunks_of(db, other)[0]
    sql(db, "UPDATE chunks SET attempts = :n, dispatched_at = now() - interval '1 hour' "
            "WHERE id = :i", n=MAX_ATTEMPTS, i=e.id)  # fmt: skip
    for ready in (7, None):
        assert run_reap(db, ready=ready)[0].failed == 0
    assert chunks_of(db, other)[0].status == ChunkStatus.dispatched


def test_a_retried_night_gives_failed_chunks_more_attempts_without_reusing_one(
    db: Settings,
) -> None:
    cid = new_cycle(db)
    dispatch_all(db, cid)
    a = chunks_of(db, cid)[0]
    sql(db, "UPDATE chunks SET status = 'failed', attempts = :n WHERE id = :i",
        n=MAX_ATTEMPTS, i=a.id)  # fmt: skip
    with session_scope(db) as s:
        cycle = s.get(Cycle, cid)
        assert cycle is not None
        assert retry_cycle(s, cycle, Collector()).chunks == 1
    # the next attempt, never one already used (a token names its attempt)
    assert chunks_of(db, cid)[0].attempts == MAX_ATTEMPTS + 1
    # rejected again: handed out until max_attempts more were used, then failed again
    for attempt in range(MAX_ATTEMPTS + 2, 2 * MAX_ATTEMPTS + 1):
        sql(db, "UPDATE chunks SET status = 'rejected' WHERE id = :i", i=a.id)
        report, publish = run_reap(db, ready=0)
        assert (report.failed, publish.ids) == (0, [a.id])
        assert chunks_of(db, cid)[0].attempts == attempt
    sql(db, "UPDATE chunks SET status = 'rejected' WHERE id = :i", i=a.id)
    assert run_reap(db, ready=0)[0].failed == 1
    assert chunks_of(db, cid)[0].status == ChunkStatus.failed


def test_a_completed_count_moves_the_cycle_to_diffing_and_resends_the_stage(
    db: Settings,
) -> None:
    cid = new_cycle(db)
    # every chunk stored, but the status flip was lost (e.g. the flip was rolled back)
    sql(db, "UPDATE chunks SET status = 'stored' WHERE cycle_id = :c", c=cid)
    sql(db, "UPDATE cycles SET chunks_stored = chunks_total WHERE id = :c", c=cid)
    report, publish = run_reap(db, ready=0)
    with session_scope(db) as s:
        cycle = s.get(Cycle, cid)
        assert cycle is not None and cycle.status == CycleStatus.diffing
        assert cycle.fetched_at is not None
    assert report.stages == [(cid, CycleStatus.diffing)]
    assert publish.specs == []
    assert run_reap(db, ready=0)[0].stages == []  # reported once


def test_an_incomplete_count_stays_fetching(db: Settings) -> None:
    cid = new_cycle(db)
    sql(db, "UPDATE cycles SET chunks_stored = chunks_total - 1 WHERE id = :c", c=cid)
    run_reap(db, ready=0)
    with session_scope(db) as s:
        cycle = s.get(Cycle, cid)
        assert cycle is not None and cycle.status == CycleStatus.fetching


def test_stuck_stages_are_reported_once_per_threshold(db: Settings) -> None:
    stuck = {status: new_cycle(db) for status in
             (CycleStatus.diffing, CycleStatus.growing, CycleStatus.exporting)}  # fmt: skip
    recent, done = new_cycle(db), new_cycle(db)
    for status, cid in stuck.items():
        sql(db, "UPDATE cycles SET status = :s, status_changed_at = now() - interval '1 hour' "
                "WHERE id = :c", s=status.value, c=cid)  # fmt: skip
    sql(db, "UPDATE cycles SET status = 'growing', status_changed_at = now() WHERE id = :c",
        c=recent)  # fmt: skip
    sql(db, "UPDATE cycles SET status = 'done', status_changed_at = now() - interval '1 hour' "
            "WHERE id = :c", c=done)  # fmt: skip
    first = run_reap(db, ready=0)[0]
    assert sorted(first.stages) == sorted((cid, status) for status, cid in stuck.items())
    assert run_reap(db, ready=0)[0].stages == []  # not again within the threshold
    # once the threshold has passed again (the resent stage is stuck too), report again
    sql(db, "UPDATE cycles SET status_changed_at = now() - make_interval(secs => :s) "
            "WHERE id = :c", s=STALE + 1, c=stuck[CycleStatus.growing])  # fmt: skip
    assert run_reap(db, ready=0)[0].stages == [(stuck[CycleStatus.growing], CycleStatus.growing)]


def test_a_running_stage_is_not_reported(db: Settings) -> None:
    """The stage holds its cycle row locked while it runs: SKIP LOCKED leaves it out."""
    cid = new_cycle(db)
    sql(db, "UPDATE cycles SET status = 'diffing', status_changed_at = now() - interval '1 hour'"
            " WHERE id = :c", c=cid)  # fmt: skip
    with sessionmaker_for(db).begin() as running:
        running.execute(select(Cycle).where(Cycle.id == cid).with_for_update())
        assert run_reap(db, ready=0)[0].stages == []
    assert run_reap(db, ready=0)[0].stages == [(cid, CycleStatus.diffing)]


# -- staleness by progress, held chunks, every stage ---------------------------------------


def test_a_chunk_being_fetched_is_not_republished_when_the_queue_empties(db: Settings) -> None:
    """Dispatched long ago but its fetch said it started recently: it is being fetched."""
    cid = new_cycle(db)
    dispatch_all(db, cid)
    started, waiting = chunks_of(db, cid)[:2]
    sql(db, "UPDATE chunks SET dispatched_at = now() - interval '1 hour' WHERE cycle_id = :c",
        c=cid)  # fmt: skip
    sql(db, "UPDATE chunks SET progress_at = now() - interval '1 minute' WHERE cycle_id = :c "
            "AND id <> :w", c=cid, w=waiting.id)  # fmt: skip
    report, publish = run_reap(db, ready=0)
    # only the one that never started (lost from the queue) is published again
    assert publish.ids == [waiting.id] and report.republished == 1
    assert started.id not in publish.ids


def test_a_fetch_silent_past_its_hard_limit_is_republished(db: Settings) -> None:
    from battletracker.pipeline.reaper import FETCH_HARD_LIMIT

    cid = new_cycle(db)
    dispatch_all(db, cid)
    dead = chunks_of(db, cid)[0]
    sql(db, "UPDATE chunks SET progress_at = now() - make_interval(secs => :s) WHERE id = :i",
        s=FETCH_HARD_LIMIT.total_seconds() + 200, i=dead.id)  # fmt: skip
    for ready in (5, None):  # whatever the queue holds: that fetch is over
        sql(db, "UPDATE chunks SET status = 'dispatched', progress_at = now() - "
                "make_interval(secs => :s) WHERE id = :i",
            s=FETCH_HARD_LIMIT.total_seconds() + 200, i=dead.id)  # fmt: skip
        assert run_reap(db, ready=ready)[1].ids == [dead.id]
    chunk = chunks_of(db, cid)[0]
    assert chunk.progress_at is None  # the new attempt starts its own clock


def test_held_chunks_are_published_after_their_time(db: Settings) -> None:
    cid = new_cycle(db)
    dispatch_all(db, cid)
    a, b = chunks_of(db, cid)[:2]
    sql(db, "UPDATE chunks SET status = 'held', not_before = now() + interval '10 minutes' "
            "WHERE id = :i", i=a.id)  # fmt: skip
    sql(db, "UPDATE chunks SET status = 'held', not_before = now() - interval '1 second' "
            "WHERE id = :i", i=b.id)  # fmt: skip
    report, publish = run_reap(db, ready=3)
    assert report.republished == 1
    assert publish.ids == [b.id]
    after = {c.id: c for c in chunks_of(db, cid)}
    assert after[a.id].status == ChunkStatus.held
    assert (after[b.id].status, after[b.id].not_before) == (ChunkStatus.dispatched, None)


def test_a_lost_boards_stage_is_resent(db: Settings) -> None:
    cid = new_cycle(db)
    sql(db, "UPDATE cycles SET status = 'materialising', "
            "status_changed_at = now() - interval '1 hour' WHERE id = :c", c=cid)  # fmt: skip
    assert run_reap(db, ready=0)[0].stages == [(cid, CycleStatus.materialising)]
    sql(db, "UPDATE cycles SET status = 'failed', status_changed_at = now() - interval '1 hour' "
            "WHERE id = :c", c=cid)  # fmt: skip
    assert run_reap(db, ready=0)[0].stages == []  # a failed stage waits for the operator
