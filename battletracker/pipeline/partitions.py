"""Partitions created on demand: a month of daily tables, a cycle's staging area.

DDL runs under a transaction-scoped advisory lock so that two workers creating the same
partition do not race into an error.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, text

__all__ = [
    "DAILY_TABLES",
    "drop_cycle_staging",
    "ensure_cycle_staging",
    "ensure_month_partitions",
    "ensure_partitions_between",
]

DAILY_TABLES = ("total_battles", "diff_battles")
_LOCK_KEY = 0x6274_7061  # "btpa"


def _lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def ensure_month_partitions(conn: Connection, day: dt.date) -> None:
    """Create the month partitions of the daily tables that hold ``day``."""
    start = day.replace(day=1)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    _lock(conn)
    for table in DAILY_TABLES:
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {table}_{start:%Y_%m} PARTITION OF {table} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        )


def ensure_partitions_between(conn: Connection, first: dt.date, last: dt.date) -> None:
    """Month partitions of the daily tables for every day from ``first`` to ``last``."""
    month = first.replace(day=1)
    while month <= last:
        ensure_month_partitions(conn, month)
        month = (month + dt.timedelta(days=32)).replace(day=1)


def _staging_name(cycle_id: int) -> str:
    return f"staged_accounts_c{int(cycle_id)}"


def ensure_cycle_staging(conn: Connection, cycle_id: int) -> None:
    """The staging partition that ``store_results`` COPYs one cycle's accounts into."""
    _lock(conn)
    conn.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {_staging_name(cycle_id)} PARTITION OF staged_accounts "
            f"FOR VALUES IN ({int(cycle_id)})"
        )
    )


def drop_cycle_staging(conn: Connection, cycle_id: int) -> None:
    """Drop a cycle's staging once its diffs are computed (cheaper than DELETE)."""
    _lock(conn)
    conn.execute(text(f"DROP TABLE IF EXISTS {_staging_name(cycle_id)}"))
