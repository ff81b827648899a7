#!/usr/bin/env python
"""Benchmark the store path against the obvious alternatives, side by side in one run.

    python scripts/bench_store.py                 # 200,000 accounts
    python scripts/bench_store.py --rows 1000000 --orm-rows 50000

Each way of writing a night's accounts into ``players`` runs twice: a *new* night (the
table is empty: every row is inserted) and an *update* night (the table holds the
previous night and ``--changed`` of the accounts changed, as on a real night):

(a) ours: ``copy_rows`` (psycopg 3 binary COPY) into the cycle's staging partition, then the
    one set-based upsert that ``compute_diffs`` runs (``INSERT … ON CONFLICT DO UPDATE …
    WHERE (…) IS DISTINCT FROM (…)``); also the whole ``compute_diffs`` (change table,
    ``total_battles``, ``diff_battles``, players), for reference;
(b) SQLAlchemy Core ``executemany`` of the same ``INSERT … ON CONFLICT`` (and, as (b'),
    with a RETURNING added, which is what makes SQLAlchemy 2.1 batch it);
(c) ORM ``session.merge`` per row, on an ``--orm-rows`` subset, extrapolated.

Every method runs in a forked child, so its peak RSS is its own. Then COPY itself:
``copy_rows`` binary (what the store uses) against ``copy_rows`` text and, when
psycopg2 is installed, psycopg2 ``copy_expert`` (text, what the store used before).

Uses a throwaway database on $BATTLETRACKER_TEST_ADMIN_URL (default: local PostgreSQL).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from battletracker.db import copy_rows, engine_for
from battletracker.models import COUNTERS, PS_THRESHOLD, Cycle, CycleStatus, Player, platform_of
from battletracker.pipeline.diffs import _PLAYERS, compute_diffs  # the real statement
from battletracker.pipeline.partitions import drop_cycle_staging, ensure_cycle_staging
from battletracker.pipeline.result import COLUMNS
from battletracker.pipeline.store import STAGING_TYPES
from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database

Row = tuple[Any, ...]

#: The nights, set before the children fork (they inherit them instead of unpickling).
NIGHTS: dict[str, list[Row]] = {}
_PLAYER_COLS = ("account_id", "platform", "nickname", "created_at", "last_battle_time",
                *COUNTERS, "last_seen")  # fmt: skip


# -- data ----------------------------------------------------------------------------------


def make_nights(n: int, changed: float, seed: int = 7) -> tuple[list[Row], list[Row]]:
    """Two nights of ``n`` accounts (``COLUMNS`` order); ``changed`` of them played."""
    rng = random.Random(seed)
    first: list[Row] = []
    second: list[Row] = []
    for i in range(n):
        # a quarter of the accounts on PlayStation, as on the real API
        account_id = 5_000 + i if i % 4 else PS_THRESHOLD + 73_740_000 + i
        battles = rng.randrange(0, 20_000)
        row = _row(account_id, battles, rng)
        first.append(row)
        if rng.random() < changed:
            played = rng.randrange(1, 25)
            row = (*row[:3], row[3] + 86_400, *_counters(battles + played))
        second.append(row)
    return first, second


def _counters(b: int) -> tuple[int, ...]:
    wins = b * 51 // 100
    draws = b // 100
    return (b, wins, b - wins - draws, draws, b * 12 // 10, b * 9 // 10, b * 1200, b * 1100,
            b // 3, b // 2, b * 520, b * 6, b * 8, b * 3 // 10)  # fmt: skip


def _row(account_id: int, battles: int, rng: random.Random) -> Row:
    created = 1_400_000_000 + rng.randrange(0, 300_000_000)
    return (account_id, f"Tanker_{account_id:x}", created, created + rng.randrange(0, 10**7),
            *_counters(battles))  # fmt: skip


def as_player(row: Row, day: dt.date) -> dict[str, Any]:
    return {"account_id": row[0], "platform": platform_of(row[0]).value, "nickname": row[1],
            "created_at": row[2], "last_battle_time": row[3],
            **dict(zip(COUNTERS, row[4:], strict=True)), "last_seen": day}  # fmt: skip


# -- the methods (each returns seconds; run inside a forked child) -------------------------

DAY = dt.date(2026, 3, 1)


def ours(settings: Settings, night: str, cycle_id: int) -> dict[str, float]:
    """COPY into staging + the set-based upsert, one transaction (as store + diffs)."""
    eng = engine_for(settings)
    t0 = time.perf_counter()
    with eng.begin() as conn:
        copy_rows(conn, "staged_accounts", ("cycle_id", *COLUMNS),
                  ((cycle_id, *r) for r in NIGHTS[night]), types=STAGING_TYPES)  # fmt: skip
        t1 = time.perf_counter()
        conn.execute(text(_PLAYERS), {"cid": cycle_id, "day": DAY})
    t2 = time.perf_counter()
    return {"total": t2 - t0, "copy": t1 - t0, "upsert": t2 - t1}


def ours_full(settings: Settings, night: str, cycle_id: int) -> dict[str, float]:
    """COPY into staging + the whole ``compute_diffs`` (totals, diffs, players)."""
    eng = engine_for(settings)
    t0 = time.perf_counter()
    with eng.begin() as conn:
        copy_rows(conn, "staged_accounts", ("cycle_id", *COLUMNS),
                  ((cycle_id, *r) for r in NIGHTS[night]), types=STAGING_TYPES)  # fmt: skip
    with Session(eng) as s, s.begin():
        report = compute_diffs(s, cycle_id)
        assert report is not None
    return {"total": time.perf_counter() - t0}


def _core_statement() -> Any:
    stmt = pg_insert(Player.__table__)
    ex = stmt.excluded
    compared = ("nickname", "created_at", "last_battle_time", *COUNTERS)
    return stmt.on_conflict_do_update(
        index_elements=["account_id"],
        set_={**{c: ex[c] for c in compared}, "updated_at": func.now()},
        where=tuple_(*(Player.__table__.c[c] for c in compared)).is_distinct_from(
            tuple_(*(ex[c] for c in compared))
        ),
    )


def core(
    settings: Settings, night: str, cycle_id: int, returning: bool = False
) -> dict[str, float]:
    """SQLAlchemy Core ``executemany`` of INSERT … ON CONFLICT DO UPDATE … WHERE distinct.

    SQLAlchemy 2.1 sends this as a plain DBAPI ``executemany`` (one round trip per row
    with psycopg2): its "insertmanyvalues" batching is off for ON CONFLICT without
    RETURNING (sqlalchemy#13130). ``returning=True`` adds a RETURNING, which batches.
    """
    eng = engine_for(settings)
    t0 = time.perf_counter()
    params = [as_player(r, DAY) for r in NIGHTS[night]]
    stmt = _core_statement()
    if returning:
        stmt = stmt.returning(Player.__table__.c.account_id)
    with eng.begin() as conn:
        result = conn.execute(stmt, params)
        if returning:
            result.all()
    return {"total": time.perf_counter() - t0}


def orm_merge(settings: Settings, night: str, cycle_id: int, limit: int) -> dict[str, float]:
    """ORM ``session.merge`` of one object per row, one transaction (the naive way)."""
    eng = engine_for(settings)
    t0 = time.perf_counter()
    with Session(eng) as s, s.begin():
        for r in NIGHTS[night][:limit]:
            s.merge(Player(**as_player(r, DAY)))
    return {"total": time.perf_counter() - t0}


# -- harness -------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: dict[str, float]
    peak_mib: float
    growth_mib: float


def _child(fn: Callable[..., dict[str, float]], args: Sequence[Any]) -> Run:
    settings = args[0]
    engine_for(settings).dispose(close=False)  # never share the parent's connections
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = fn(*args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return Run(seconds, peak / 1024, (peak - base) / 1024)


def in_child(fn: Callable[..., dict[str, float]], *args: Any) -> Run:
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(_child, (fn, args))


def sql(settings: Settings, statement: str, **params: Any) -> None:
    with engine_for(settings).begin() as conn:
        conn.execute(text(statement), params)


def vacuum(settings: Settings) -> None:
    with engine_for(settings).connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE players"))


_cycle_ids = iter(range(1_000, 10**6))


def prepare(settings: Settings, scenario: str, *, full: bool = False) -> int:
    """Empty ``players`` (and the daily tables); seed it with night 1 for ``update``."""
    sql(settings, "TRUNCATE players, total_battles, diff_battles")
    if scenario == "update":
        seed = next(_cycle_ids)
        with engine_for(settings).begin() as conn:
            ensure_cycle_staging(conn, seed)
            copy_rows(conn, "staged_accounts", ("cycle_id", *COLUMNS),
                      ((seed, *r) for r in NIGHTS["first"]), types=STAGING_TYPES)  # fmt: skip
            conn.execute(text(_PLAYERS), {"cid": seed, "day": DAY - dt.timedelta(days=1)})
            drop_cycle_staging(conn, seed)
    vacuum(settings)
    cycle_id = next(_cycle_ids)
    with Session(engine_for(settings)) as s, s.begin():
        s.add(Cycle(id=cycle_id, date=DAY + dt.timedelta(days=cycle_id), notes={},
                    status=CycleStatus.diffing if full else CycleStatus.fetching))  # fmt: skip
        s.flush()
        ensure_cycle_staging(s.connection(), cycle_id)
    return cycle_id


def night_of(scenario: str) -> str:
    return "first" if scenario == "new" else "second"


# -- COPY drivers --------------------------------------------------------------------------

def copy_ours(settings: Settings, binary: bool) -> float:
    t0 = time.perf_counter()
    with engine_for(settings).begin() as conn:
        copy_rows(conn, "bench_copy", ("cycle_id", *COLUMNS),
                  ((1, *r) for r in NIGHTS["first"]),
                  types=STAGING_TYPES if binary else None)  # fmt: skip
    return time.perf_counter() - t0


def copy_psycopg2(settings: Settings) -> float:
    import io

    import psycopg2

    buf = io.StringIO()
    for r in NIGHTS["first"]:
        buf.write("\t".join(str(v) if v is not None else "\\N" for v in (1, *r)) + "\n")
    buf.seek(0)
    url = make_url(settings.database_url).set(drivername="postgresql")
    with psycopg2.connect(url.render_as_string(hide_password=False)) as pc:
        t0 = time.perf_counter()
        with pc.cursor() as cur:
            cur.copy_expert(f"COPY bench_copy (cycle_id, {', '.join(COLUMNS)}) FROM STDIN", buf)
        pc.commit()
        return time.perf_counter() - t0


def bench_copy(settings: Settings, repeat: int) -> dict[str, list[float]]:
    sql(settings, "CREATE TABLE bench_copy (LIKE staged_accounts)")
    ways: dict[str, Callable[[], float]] = {
        "copy_rows binary (the store)": lambda: copy_ours(settings, True),
        "copy_rows text": lambda: copy_ours(settings, False),
    }
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        print("  psycopg2 not installed: psycopg 3 only")
    else:
        ways["psycopg2 copy_expert (text)"] = lambda: copy_psycopg2(settings)
    out: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeat):
        for name, way in ways.items():  # interleaved, so drift hits every way alike
            sql(settings, "TRUNCATE bench_copy")
            out[name].append(way())
    return out


# -- report --------------------------------------------------------------------------------


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>11,.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000, help="accounts per night")
    p.add_argument("--orm-rows", type=int, default=20_000, help="subset for session.merge")
    p.add_argument("--changed", type=float, default=0.05, help="share changed on night 2")
    p.add_argument("--repeat", type=int, default=3, help="runs of each COPY driver")
    args = p.parse_args(argv)
    n, orm_n = args.rows, min(args.orm_rows, args.rows)

    t0 = time.perf_counter()
    NIGHTS["first"], NIGHTS["second"] = make_nights(n, args.changed)
    real_changed = sum(a != b for a, b in zip(NIGHTS["first"], NIGHTS["second"], strict=True))
    print(f"generated 2 nights of {n:,} accounts ({real_changed:,} changed) in "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip

    with temporary_database(Settings(), prefix="bt_bench") as settings:
        with engine_for(settings).connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        print(f"PostgreSQL {version}, Python {sys.version.split()[0]}, "
              f"{multiprocessing.cpu_count()} CPUs\n")  # fmt: skip

        methods: list[tuple[str, Callable[..., dict[str, float]], tuple[Any, ...], int, bool]] = [
            ("(a) ours: COPY -> staging + 1 upsert", ours, (), n, False),
            ("(b) Core executemany ON CONFLICT", core, (), n, False),
            ("(b') the same + RETURNING (batched)", core, (True,), n, False),
            (f"(c) ORM session.merge per row [{orm_n:,} rows]", orm_merge, (orm_n,), orm_n,
             False),
            ("(a+) ours with the whole compute_diffs", ours_full, (), n, True),
        ]  # fmt: skip
        results: dict[tuple[str, str], Run] = {}
        print(f"{'rows/s into players':<46}{'new night':>12}{'update night':>14}"
              f"{'peak RSS MiB (growth)':>24}")  # fmt: skip
        for label, fn, extra, rows, full in methods:
            cells, mem = [], []
            for scenario in ("new", "update"):
                cycle_id = prepare(settings, scenario, full=full)
                run = in_child(fn, settings, night_of(scenario), cycle_id, *extra)
                sql(settings, f"DROP TABLE IF EXISTS staged_accounts_c{cycle_id}")
                results[label, scenario] = run
                cells.append(rate(rows, run.seconds["total"]))
                mem.append(f"{run.peak_mib:.0f} (+{run.growth_mib:.0f})")
            print(f"{label:<46}{cells[0]:>12}{cells[1]:>14}{' / '.join(mem):>24}")
            if fn is ours:
                for part in ("copy", "upsert"):
                    sub = [rate(n, results[label, s].seconds[part]) for s in ("new", "update")]
                    print(f"{'    of which ' + part:<46}{sub[0]:>12}{sub[1]:>14}")
        orm_label = methods[3][0]
        for scenario in ("new", "update"):
            secs = results[orm_label, scenario].seconds["total"] * n / orm_n
            print(f"    (c) extrapolated to {n:,} rows, {scenario} night: ~{secs:,.0f} s "
                  f"(measured {results[orm_label, scenario].seconds['total']:.1f} s "
                  f"for {orm_n:,})")  # fmt: skip

        print("\nratios (rows/s of ours / rows/s of the other):")
        ours_label = methods[0][0]
        for label, *_rest, rows, _full in methods[1:4]:
            parts = []
            for scenario in ("new", "update"):
                mine = n / results[ours_label, scenario].seconds["total"]
                theirs = rows / results[label, scenario].seconds["total"]
                parts.append(f"{scenario} {mine / theirs:,.1f}x")
            print(f"  ours vs {label.split(' [')[0]:<40} {', '.join(parts)}")

        print(f"\nCOPY of {n:,} staging rows, best of {args.repeat} (median):")
        copies = bench_copy(settings, args.repeat)
        best = {name: min(times) for name, times in copies.items()}
        for name, times in copies.items():
            print(f"  {name:<42}{rate(n, min(times))} rows/s "
                  f"({rate(n, statistics.median(times)).strip()})")  # fmt: skip
        fastest = min(best, key=best.__getitem__)
        base = best["copy_rows text"]
        print(f"  fastest: {fastest} ({base / best[fastest]:.2f}x copy_rows text)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
