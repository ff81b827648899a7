"""The compact board layout stays compact, and its lookups stay index lookups.

Issue 16: all boards together within twice the disk of ``players``. A board table's
bytes per ranked row are bounded by what its layout allows (a 48-byte heap tuple, one
int4 B-tree entry, a BRIN of a few pages); a column or an index added back breaks the
bound. The readers' own statements (captured as they run) must read a board through
its indexes -- the account B-tree or the BRIN on the ranks, touching a few page ranges
-- never by scanning the table.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from battletracker.bench.night import NIGHT, _seed
from battletracker.db import engine_for
from battletracker.settings import Settings
from battletracker.stats import queries
from battletracker.stats.materialise import (
    PAGES_PER_RANGE,
    PARTITIONS,
    leaf_name,
    materialise,
    partition_name,
)

pytestmark = pytest.mark.integration

PLAYERS = 60_000
AS_OF = NIGHT - dt.timedelta(days=1)  # the seed's one day of diffs
PAGE, PAGE_HEADER, BTREE_SPECIAL = 8192, 24, 16
#: MAXALIGN(23-byte tuple header + 24 bytes of data) + a 4-byte line pointer
HEAP_ROW = 48 + 4
#: an index tuple (8-byte header + int4 key, MAXALIGNed) + its line pointer
BTREE_ROW = 16 + 4
#: pages a partition takes whatever its rows: the heap's free space and visibility maps,
#: the B-tree's metapage and root, the BRIN's metapage, revmap and free space map
FIXED_PAGES = 3 + 1 + 2 + 2 + 3


def layout_bound(rows: int) -> int:
    """Bytes a board partition of ``rows`` ranked rows may take: heap, B-tree, BRIN, forks."""
    heap = math.ceil(rows / ((PAGE - PAGE_HEADER) // HEAP_ROW))
    leaves = math.ceil(rows / ((PAGE - PAGE_HEADER - BTREE_SPECIAL) // BTREE_ROW))
    btree = leaves + math.ceil(leaves / 100) + 2  # inner pages, meta and root
    brin = 2 + math.ceil(heap / PAGES_PER_RANGE / 100)  # meta, revmap, summaries
    forks = 3 + 1 + 3  # the heap's free space and visibility maps, the BRIN's free space
    return (heap + btree + brin + forks) * PAGE


@pytest.fixture(scope="module")
def db(module_db_settings: Settings) -> Settings:
    engine = engine_for(module_db_settings)
    _seed(engine, PLAYERS, history_days=1)
    materialise(engine, AS_OF, boards=["battles", "avg_damage"], windows=["day", "all"],
                activity=False)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return module_db_settings


@pytest.fixture
def session(db: Settings) -> Iterator[Session]:
    with Session(engine_for(db)) as s:
        yield s


@pytest.mark.parametrize(("board", "window"), [("battles", "all"), ("avg_damage", "all"),
                                               ("battles", "day")])
def test_bytes_per_ranked_row_stay_within_the_layout(session: Session, board: str,
                                                     window: str) -> None:
    leaf = leaf_name(board, window)
    rows, size, bound = 0, 0, 0
    for platform, _ in PARTITIONS:
        part = partition_name(leaf, platform)
        n, bytes_ = session.execute(text(
            f"SELECT (SELECT count(*) FROM {part}), pg_total_relation_size('{part}')")).one()
        rows, size, bound = rows + n, size + bytes_, bound + layout_bound(n)
    players = session.execute(text("SELECT pg_total_relation_size('players')")).scalar_one()
    assert rows == session.execute(text(f"SELECT count(*) FROM {leaf}")).scalar_one()
    assert rows > PLAYERS // 10
    assert size <= bound, (size / rows, bound / rows)
    # the earlier layout took ~160 bytes a row; this one ~73 at a million rows, besides
    # the few pages every partition has whatever its size (forks, metapages, roots)
    assert (size - len(PARTITIONS) * FIXED_PAGES * PAGE) / rows < 85
    # one board over every player stays well under half the disk of players itself
    assert size < players / 2.5


def _plans(session: Session, calls: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """Run the readers, capture their statements on board tables, EXPLAIN ANALYZE each."""
    seen: list[tuple[str, Any]] = []
    engine = session.get_bind()

    def grab(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "lbe__" in statement:
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        for call in calls:
            call()
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    out = []
    with raw.cursor() as cur:
        for statement, params in seen:
            cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
            out.append((statement, cur.fetchone()[0][0]["Plan"]))
    return out


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.parametrize("platform", ["all", "xbox", "ps"])
def test_lookups_read_a_board_through_its_indexes(session: Session, platform: str) -> None:
    board, window = "avg_damage", "all"
    total = queries.top(session, board, window, platform).total
    middle = queries.top(session, board, window, platform, offset=total // 2, limit=1)
    account = middle.entries[0].account_id
    plans = _plans(session, [
        lambda: queries.top(session, board, window, platform, offset=total // 3, limit=50),
        lambda: queries.rank_of(session, board, window, platform, account),
        lambda: queries.around(session, board, window, platform, account, n=5),
        lambda: queries.player_ranks(session, account),
    ])
    assert len(plans) >= 4
    ranges_read = 0
    for statement, plan in plans:
        scans = [n for n in _nodes(plan) if str(n.get("Relation Name", "")).startswith("lbe__")
                 or str(n.get("Index Name", "")).startswith("lbe__")]
        assert scans, statement
        assert not [n for n in scans if n["Node Type"] == "Seq Scan"], json.dumps(plan)
        for node in scans:
            if node["Node Type"] == "Bitmap Heap Scan":
                blocks = node.get("Lossy Heap Blocks", 0) + node.get("Exact Heap Blocks", 0)
                ranges_read = max(ranges_read, blocks)
            else:
                assert node["Node Type"] in ("Index Scan", "Index Only Scan",
                                             "Bitmap Index Scan"), node["Node Type"]
    # each platform's partition written in rank order: a page of ranks sits in a few
    # page ranges of each partition, not spread over the table
    assert 0 < ranges_read <= 4 * PAGES_PER_RANGE


def test_a_board_table_holds_nothing_constant(session: Session) -> None:
    columns = session.execute(text(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'lbe__battles__all'::regclass "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum")).scalars().all()
    assert columns == ["score", "account_id", "battles", "rank", "platform_rank"]
    for platform, _ in PARTITIONS:
        part = partition_name("lbe__battles__all", platform)
        indexes = session.execute(text(
            "SELECT am.amname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_am am ON am.oid = i.relam WHERE x.indrelid = CAST(:t AS regclass) "
            "ORDER BY 1"), {"t": part}).scalars().all()
        assert indexes == ["brin", "btree"], part
