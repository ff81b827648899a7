"""Partitions created on demand: a month of daily tables, a cycle's staging area.

The DDL runs in two functions of the database owner (migration 0007), so the workers'
role makes a night's partitions without any right to alter the pipeline's tables; they
take a transaction-scoped advisory lock so that two workers creating the same partition
do not race into an error.
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


def ensure_month_partitions(conn: Connection, day: dt.date) -> None:
    """Create the month partitions of the daily tables that hold ``day``."""
    conn.execute(text("SELECT battletracker_month_partitions(:day)"), {"day": day})


def ensure_partitions_between(conn: Connection, first: dt.date, last: dt.date) -> None:
    """Month partitions of the daily tables for every day from ``first`` to ``last``."""
    month = first.replace(day=1)
    while month <= last:
        ensure_month_partitions(conn, month)
        month = (month + dt.timedelta(days=32)).replace(day=1)



def ensure_cycle_staging(conn: Connection, cycle_id: int) -> None:
    """The staging partition that ``store_results`` COPYs one cycle's accounts into."""
    conn.execute(text("SELECT battletracker_cycle_staging(:c, true)"), {"c": int(cycle_id)})


def drop_cycle_staging(conn: Connection, cycle_id: int) -> None:
    """Drop a cycle's staging once its diffs are computed (cheaper than DELETE)."""
    conn.execute(text("SELECT battletracker_cycle_staging(:c, false)"), {"c": int(cycle_id)})
