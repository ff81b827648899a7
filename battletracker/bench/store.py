"""The store path (issue point 3): ``store_result`` rows/s beside a raw binary COPY.

A night's results are built once (the simulator's accounts, one message per chunk, as a
fetcher sends them) and stored twice in the same run: through ``store_result`` (validate,
COPY into the cycle's staging partition, mark the chunk, bump the cycle), one
transaction per chunk as the ``store_results`` task does; and as a raw psycopg 3 binary
``COPY`` of exactly the same rows, one transaction per chunk, into a table of the same
shape. The reference COPY runs before and after, and their mean is the reference, so
load that comes and goes during the run hits both. Target: ratio >= 0.8.

The same raw COPY with the rules of the game as its ``WHERE`` (what the store's COPY
filters by, ``pipeline/rules_sql.py``) runs beside them: its ratio to the plain one is
the most the store could reach with the rules checked as the rows arrive, before any
other check or bookkeeping of its own."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import psycopg
from sqlalchemy import text

from ..db import engine_for, psycopg_conninfo, session_scope
from ..pipeline.coordinator import create_cycle
from ..pipeline.fetch import account_row
from ..pipeline.result import COLUMNS, ChunkSpec, FetchResult
from ..pipeline.rules_sql import keep_sql, latest_allowed
from ..pipeline.store import STAGING_TYPES, store_result
from ..settings import IdRange, Settings
from ..wargaming.simulator import PS_MIN, XBOX_MIN, Population
from .report import Figure, Outcome

__all__ = ["night_messages", "run"]

DAY = dt.date(2026, 3, 2)


def night_messages(
    settings: Settings, population: Population, cycle_id: int
) -> list[dict[str, Any]]:
    """One result message per chunk of the cycle, with the population's accounts."""
    engine = engine_for(settings)
    with engine.connect() as conn:
        chunks = conn.execute(
            text(
                "SELECT id, platform, first_id, last_id FROM chunks WHERE cycle_id = :c ORDER BY id"
            ),
            {"c": cycle_id},
        ).all()
    messages = []
    for chunk_id, platform, first, last in chunks:
        spec = ChunkSpec(chunk_id, cycle_id, str(platform), first, last)
        rows = []
        for account_id in range(first, last + 1):
            obj = population.account(account_id, 0)
            if obj is not None:
                rows.append(account_row(account_id, obj))
        result = FetchResult(
            spec=spec,
            rows=rows,
            empty=spec.size - len(rows),
            node="bench",
            seconds=1.0,
            stats={"requests": 0, "limit_errors": 0, "retries": 0},
        )
        messages.append(result.to_message())
    return messages


def _raw_copy(settings: Settings, messages: list[dict[str, Any]], where: str = "") -> float:
    """Seconds for a binary COPY of every message's rows, one transaction per chunk
    (``where``: the COPY's ``WHERE`` clause, if any)."""
    with psycopg.connect(psycopg_conninfo(settings.database_url)) as pc:
        pc.execute("TRUNCATE bench_copy")
        pc.commit()
        t0 = time.perf_counter()
        for msg in messages:
            cid = msg["cycle_id"]
            with (
                pc.cursor() as cur,
                cur.copy(
                    f"COPY bench_copy (cycle_id, {', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY) "
                    + where
                ) as cp,
            ):
                cp.set_types(list(STAGING_TYPES))
                for row in msg["rows"]:
                    cp.write_row((cid, *row))
            pc.commit()
        return time.perf_counter() - t0


def run(*, ids: int = 200_000, chunk_size: int = 10_000, seed: int = 5) -> Outcome:
    """Store a night of ``ids`` ids (both platforms) and COPY the same rows raw."""
    from ..testing.databases import temporary_database

    outcome = Outcome("store", {"ids": ids, "chunk_size": chunk_size})
    started = time.monotonic()
    half = ids // 2
    population = Population(seed=seed, xbox_ids=half, ps_ids=ids - half, new_per_day=0)
    with temporary_database(Settings(), prefix="bt_bench") as db:
        settings = db.replace(
            chunk_size=chunk_size,
            xbox_range=IdRange(XBOX_MIN, XBOX_MIN + half - 1),
            ps_range=IdRange(PS_MIN, PS_MIN + ids - half - 1),
        )
        with session_scope(settings) as session:
            cycle = create_cycle(session, settings, DAY)
        t0 = time.perf_counter()
        messages = night_messages(settings, population, cycle.cycle_id)
        build = time.perf_counter() - t0
        rows = sum(len(m["rows"]) for m in messages)
        with engine_for(settings).begin() as conn:
            conn.execute(text("CREATE TABLE bench_copy (LIKE staged_accounts)"))
        rules = f"WHERE {keep_sql(str(latest_allowed(int(time.time()))), nicknames=False)}"
        before = _raw_copy(settings, messages)
        ruled = _raw_copy(settings, messages, rules)
        t0 = time.perf_counter()
        for msg in messages:
            with session_scope(settings) as session:
                report = store_result(session, msg)
                assert report.outcome.value == "stored", report
        ours = time.perf_counter() - t0
        ruled = (ruled + _raw_copy(settings, messages, rules)) / 2
        after = _raw_copy(settings, messages)
        with engine_for(settings).connect() as conn:
            staged = conn.execute(text("SELECT count(*) FROM staged_accounts")).scalar_one()
    reference = rows / ((before + after) / 2)
    mine = rows / ours
    outcome.add(
        Figure(
            "store_result rows/s",
            mine,
            "rows/s",
            reference=reference,
            reference_label="raw binary COPY rows/s",
        )
    )
    outcome.add(Figure("ratio store_result / raw COPY", mine / reference)).at_least(0.8)
    # where the store's time goes: the rules alone, then its own checks and bookkeeping
    outcome.add(Figure("ratio raw COPY + rules' WHERE / raw COPY", rows / ruled / reference))
    outcome.add(Figure("ratio store_result / raw COPY + rules' WHERE", ruled / ours))
    outcome.add(Figure("rows staged", staged, reference=rows, reference_label="rows sent")).equals(
        rows
    )
    outcome.notes.append(
        f"{len(messages)} chunks, {rows:,} accounts; raw COPY {before:.2f} s before and "
        f"{after:.2f} s after, with the rules' WHERE {ruled:.2f} s (mean of two), "
        f"store_result {ours:.2f} s; messages built in {build:.1f} s"
    )
    outcome.seconds = time.monotonic() - started
    return outcome
