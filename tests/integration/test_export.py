"""export_cycle against real PostgreSQL and the HTTP stand-in: documents equal the rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import ApiError, Elasticsearch
from elasticsearch import ConnectionError as EsConnectionError
from sqlalchemy import event, text

from battletracker.db import copy_rows, engine_for
from battletracker.elastic.templates import LIFECYCLE_POLICY
from battletracker.models import COUNTERS
from battletracker.pipeline.export import (
    INDEX_TEMPLATES,
    CycleNotFound,
    ExportError,
    export_cycle,
)
from battletracker.pipeline.partitions import ensure_month_partitions
from battletracker.settings import Settings
from battletracker.testing.elastic_standin import StandIn, start_standin

DAY = dt.date(2026, 1, 15)
BEFORE = dt.date(2026, 1, 14)
CYCLE_ID = 7
TOTAL, DIFF = "total_battles-2026.01.15", "diff_battles-2026.01.15"
DAILY_COLUMNS = ("account_id", "date", "platform", *COUNTERS)
PLAYER_COLUMNS = ("account_id", "platform", "nickname", "created_at", "last_battle_time",
                  "last_seen", *COUNTERS)
#: 2021-03-04T05:06:07Z, as the API sends it.
EPOCH = 1614834367


def _counters(seed: int) -> dict[str, int]:
    return {c: seed * 100 + i for i, c in enumerate(COUNTERS)}


def _account(i: int) -> int:
    return 1_073_740_000 + i if i % 3 == 0 else 5_000 + i  # PlayStation and Xbox ids


def _platform(account_id: int) -> str:
    return "ps" if account_id >= 1_000_000_000 else "xbox"


class Seed:
    """Rows written to the database, and the documents the export should make of them."""

    def __init__(self) -> None:
        self.total: dict[str, dict[str, Any]] = {}
        self.diff: dict[str, dict[str, Any]] = {}
        self.players: dict[str, dict[str, Any]] = {}

    def write(self, settings: Settings) -> None:
        total_rows, diff_rows, player_rows = [], [], []
        for i in range(250):  # 250 snapshots on DAY, 40 on the day before (not exported)
            aid, date = _account(i), DAY if i < 210 else BEFORE
            c = _counters(i)
            total_rows.append((aid, date, _platform(aid), *c.values()))
            if date == DAY:
                self.total[str(aid)] = {"account_id": aid, "date": "2026-01-15",
                                        "platform": _platform(aid), **c}
            if i % 2 == 0:
                d = _counters(i // 2)
                diff_rows.append((aid, date, _platform(aid), *d.values()))
                if date == DAY:
                    self.diff[str(aid)] = {"account_id": aid, "date": "2026-01-15",
                                           "platform": _platform(aid), **d}
            seen = DAY if i % 5 else BEFORE  # players unchanged since yesterday stay out
            created = None if i % 7 == 0 else EPOCH
            player_rows.append((aid, _platform(aid), f"tanker_{i}\t\\", created, EPOCH + i,
                                seen, *c.values()))
            if seen == DAY:
                self.players[str(aid)] = {
                    "account_id": aid, "platform": _platform(aid), "nickname": f"tanker_{i}\t\\",
                    "created_at": None if created is None else "2021-03-04T05:06:07Z",
                    "last_battle_time": (dt.datetime.fromtimestamp(EPOCH + i, dt.UTC)
                                         .strftime("%Y-%m-%dT%H:%M:%SZ")),
                    "last_seen": seen.isoformat(), **c,
                }
        with engine_for(settings).begin() as conn:
            ensure_month_partitions(conn, DAY)
            conn.execute(text(
                "INSERT INTO cycles (id, date, status, chunks_total, chunks_stored, ids_total,"
                " accounts, rejected_results, notes)"
                " VALUES (:id, :date, 'exporting', 0, 0, 0, 0, 0, '{}')"
            ), {"id": CYCLE_ID, "date": DAY})
            copy_rows(conn, "total_battles", DAILY_COLUMNS, total_rows)
            copy_rows(conn, "diff_battles", DAILY_COLUMNS, diff_rows)
            copy_rows(conn, "players", PLAYER_COLUMNS, player_rows)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with start_standin() as s:
        yield s


@pytest.fixture
def seed(db_settings: Settings) -> Seed:
    s = Seed()
    s.write(db_settings)
    return s


@pytest.fixture
def es_settings(db_settings: Settings, standin: StandIn) -> Settings:
    return db_settings.replace(elasticsearch_url=standin.url)


def test_without_elasticsearch_url_the_export_is_skipped(settings: Settings) -> None:
    report = export_cycle(settings, CYCLE_ID)
    assert report.skipped == "no elasticsearch_url"
    assert report.ok
    assert report.indices == ()


def test_documents_equal_the_rows_of_the_cycle_date(
    es_settings: Settings, seed: Seed, standin: StandIn
) -> None:
    report = export_cycle(es_settings, CYCLE_ID, chunk_size=100)

    assert report.skipped is None and report.ok and report.errors == ()
    assert report.date == DAY
    assert dict(report.documents) == {TOTAL: 210, DIFF: 105, "players": 200}
    assert set(standin.indices) == {TOTAL, DIFF, "players"}
    assert standin.indices[TOTAL] == seed.total
    assert standin.indices[DIFF] == seed.diff
    assert standin.indices["players"] == seed.players
    # streamed in chunk_size batches, not one request
    assert sum(1 for _, path in standin.requests if path.endswith("_bulk")) == 6


def test_rows_stream_through_server_side_cursors(
    es_settings: Settings, seed: Seed, standin: StandIn
) -> None:
    cursors: dict[str, str | None] = {}

    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        for table in ("total_battles", "diff_battles", "players"):
            if f"FROM {table}" in statement:
                cursors[table] = cursor.name  # psycopg2: named means server-side

    engine = engine_for(es_settings)
    event.listen(engine, "before_cursor_execute", spy)
    try:
        export_cycle(es_settings, CYCLE_ID, chunk_size=50)
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert set(cursors) == {"total_battles", "diff_battles", "players"}
    assert all(cursors.values()), cursors


def test_templates_are_installed_once_and_shape_the_daily_indices(
    es_settings: Settings, seed: Seed, standin: StandIn
) -> None:
    first = export_cycle(es_settings, CYCLE_ID)
    assert set(first.templates_installed) == set(INDEX_TEMPLATES)
    assert standin.templates["battletracker-total_battles"]["index_patterns"] == [
        "total_battles-*"]
    mapping = standin.mappings[TOTAL]
    assert mapping["dynamic"] == "strict"
    assert mapping["properties"]["account_id"] == {"type": "long"}
    assert mapping["properties"]["platform"] == {"type": "keyword"}
    assert mapping["properties"]["date"]["type"] == "date"
    assert all(mapping["properties"][c] == {"type": "long"} for c in COUNTERS)
    assert standin.mappings["players"]["properties"]["last_battle_time"]["type"] == "date"

    second = export_cycle(es_settings, CYCLE_ID)
    assert second.templates_installed == ()
    puts = [p for m, p in standin.requests if m == "PUT" and "_index_template" in p]
    assert len(puts) == len(INDEX_TEMPLATES)


def test_a_second_export_overwrites_instead_of_duplicating(
    es_settings: Settings, seed: Seed, standin: StandIn
) -> None:
    es = Elasticsearch(standin.url)
    export_cycle(es_settings, CYCLE_ID, client=es)
    some = next(iter(seed.total))
    with engine_for(es_settings).begin() as conn:
        conn.execute(text("UPDATE total_battles SET battles = 424242"
                          " WHERE account_id = :a AND date = :d"), {"a": int(some), "d": DAY})

    report = export_cycle(es_settings, CYCLE_ID, client=es, chunk_size=64)

    assert dict(report.documents) == {TOTAL: 210, DIFF: 105, "players": 200}
    assert es.count(index=TOTAL)["count"] == 210
    assert es.count(index="diff_battles-*")["count"] == 105
    assert es.count(index="players")["count"] == 200
    doc = es.get(index=TOTAL, id=some)
    assert doc["_version"] == 2
    assert doc["_source"]["battles"] == 424242
    es.close()  # the caller's client stays open until the caller closes it


def test_rejected_documents_are_reported(
    es_settings: Settings, seed: Seed, standin: StandIn
) -> None:
    standin.fail_items(3, status=400)

    report = export_cycle(es_settings, CYCLE_ID)

    assert not report.ok
    assert dict(report.failed) == {TOTAL: 3}
    assert report.documents[TOTAL] == 207
    assert [(e.index, e.status, e.type) for e in report.errors] == [
        (TOTAL, 400, "mapper_parsing_exception")] * 3
    assert report.as_dict()["failed"] == {TOTAL: 3}
    with pytest.raises(ExportError, match="3 document"):
        report.raise_for_errors()


def test_documents_refused_with_429_are_retried(
    es_settings: Settings, seed: Seed, standin: StandIn
) -> None:
    standin.fail_items(5, status=429)

    report = export_cycle(es_settings, CYCLE_ID, initial_backoff=0.01)

    assert report.ok
    assert report.documents[TOTAL] == 210
    assert standin.indices[TOTAL] == seed.total


def test_a_refused_bulk_request_raises_export_error(
    es_settings: Settings, seed: Seed, standin: StandIn
) -> None:
    standin.fail_requests(1, status=400)
    with pytest.raises(ExportError, match="cycle 7") as info:
        export_cycle(es_settings, CYCLE_ID)
    assert isinstance(info.value.__cause__, ApiError)


def test_an_unreachable_server_raises_export_error(db_settings: Settings, seed: Seed) -> None:
    settings = db_settings.replace(elasticsearch_url="http://user:secret@127.0.0.1:9")
    with pytest.raises(ExportError) as info:
        export_cycle(settings, CYCLE_ID)
    assert isinstance(info.value.__cause__, EsConnectionError)
    assert "secret" not in str(info.value)


def test_an_unknown_cycle_is_a_lookup_error(es_settings: Settings) -> None:
    with pytest.raises(CycleNotFound):
        export_cycle(es_settings, 999)


def test_daily_indices_have_no_replica_a_lifecycle_and_an_alias(
    es_settings: Settings, seed: Seed, standin: StandIn
) -> None:
    report = export_cycle(es_settings, CYCLE_ID)

    assert report.policy_installed
    policy = standin.policies[LIFECYCLE_POLICY]
    assert policy["phases"]["delete"] == {"min_age": "365d", "actions": {"delete": {}}}
    for index in (TOTAL, DIFF):
        assert standin.settings[index]["index.number_of_replicas"] == "0"
        assert standin.settings[index]["index.lifecycle.name"] == LIFECYCLE_POLICY
    assert "index.lifecycle.name" not in standin.settings["players"]
    assert standin.aliases == {"total_battles": {TOTAL}, "diff_battles": {DIFF}}
    es = Elasticsearch(standin.url)
    try:
        assert es.count(index="total_battles")["count"] == 210
        assert es.count(index="diff_battles")["count"] == 105
        health = {r["index"]: r["health"] for r in es.cat.indices(format="json").body}
        assert set(health.values()) == {"green"}, health  # a single node holds every shard
    finally:
        es.close()


def test_a_changed_retention_reinstalls_the_policy_only(
    es_settings: Settings, seed: Seed, standin: StandIn
) -> None:
    export_cycle(es_settings, CYCLE_ID)
    again = export_cycle(es_settings.replace(elasticsearch_retention_days=90), CYCLE_ID)

    assert again.policy_installed and again.templates_installed == ()
    assert standin.policies[LIFECYCLE_POLICY]["phases"]["delete"]["min_age"] == "90d"
    assert standin.policies[LIFECYCLE_POLICY]["_version"] == 2


def test_a_client_of_another_major_fails_the_export_loudly(
    db_settings: Settings, seed: Seed
) -> None:
    """The issue's night: a 9.x client against compose's 8.x server. The stand-in speaks
    the server's major (one above the installed client's here), so the export must raise
    instead of marking the cycle done."""
    from elasticsearch import __versionstr__

    with start_standin(major=int(__versionstr__.split(".")[0]) + 2) as wrong:
        settings = db_settings.replace(elasticsearch_url=wrong.url)
        with pytest.raises(ExportError, match="media_type_header_exception"):
            export_cycle(settings, CYCLE_ID)
