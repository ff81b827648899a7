"""How long ``total_battles`` keeps a snapshot per night: the retention rule.

Every night adds a snapshot of each account that changed (~0.7 GiB a night at 17 M
accounts). The diffs are kept for ever and carry the same information day by day, so
past ``snapshot_daily_days`` (90) a month of snapshots is cut to its Sundays: a weekly
point for the history charts, a seventh of the disk. A month is compacted once, whole,
when its last day is older than the horizon, by the owner's function
``battletracker_compact_snapshots`` (migration 0012), which the workers' role may run:
the new month is built beside the old one and swapped in, so a failure changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import Engine, text

__all__ = ["Compaction", "compact_snapshots", "due_months"]

log = logging.getLogger(__name__)

_MONTHS = """
SELECT to_date(right(c.relname, 7), 'YYYY_MM') AS month
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'total_battles'::regclass
  AND c.relname ~ '^total_battles_[0-9]{4}_[0-9]{2}$'
  AND NOT EXISTS (SELECT 1 FROM snapshot_compactions s
                  WHERE s.month = to_date(right(c.relname, 7), 'YYYY_MM'))
ORDER BY 1
"""


@dataclass(frozen=True)
class Compaction:
    """One month cut to its Sunday snapshots."""

    month: dt.date
    rows_before: int
    rows_after: int


def _month_end(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def due_months(engine: Engine, today: dt.date, daily_days: int) -> list[dt.date]:
    """Months of snapshots not yet compacted whose every day is past the horizon."""
    horizon = today - dt.timedelta(days=daily_days)
    with engine.connect() as conn:
        months = [row.month for row in conn.execute(text(_MONTHS))]
    return [m for m in months if _month_end(m) < horizon]


def compact_snapshots(engine: Engine, today: dt.date, daily_days: int) -> list[Compaction]:
    """Compact every due month, oldest first, each in a transaction of its own."""
    done = []
    for month in due_months(engine, today, daily_days):
        with engine.begin() as conn:
            counts = conn.execute(
                text("SELECT battletracker_compact_snapshots(:m)"), {"m": month}
            ).scalar()
        if counts is None:  # compacted meanwhile by another run
            continue
        before, after = int(counts[0]), int(counts[1])
        log.info("snapshots of %s: %d rows kept of %d (Sundays)", month.strftime("%Y-%m"),
                 after, before)  # fmt: skip
        done.append(Compaction(month, before, after))
    return done
