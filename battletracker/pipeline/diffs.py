"""Compute a cycle's daily rows and update ``players``: a handful of set-based statements.

1. ``cycle_changes`` (a temp table): staged accounts that are new with battles, or whose
   counters differ from ``players``, with the old counters beside the new.
2. ``total_battles`` gets the new counters, ``diff_battles`` new minus old (new accounts
   count whole), both for the cycle's date.
3. ``players`` is upserted only where something changed (``IS DISTINCT FROM``);
   ``last_seen`` moves only when counters changed.
4. The staging partition is dropped; the cycle moves on to ``growing``.

Everything runs in the caller's transaction with the cycle row locked and only when the
cycle is in ``diffing``: a second delivery waits for the first, then does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ..models import COUNTERS, PS_THRESHOLD, Cycle, CycleStatus
from .partitions import drop_cycle_staging, ensure_month_partitions

__all__ = ["DiffReport", "compute_diffs"]

log = logging.getLogger(__name__)

_C = ", ".join(COUNTERS)
_PLATFORM = f"CASE WHEN account_id < {PS_THRESHOLD} THEN 'xbox' ELSE 'ps' END"

_CHANGES = f"""
CREATE TEMP TABLE cycle_changes ON COMMIT DROP AS
SELECT s.account_id, {", ".join(f"s.{c}" for c in COUNTERS)},
       {", ".join(f"COALESCE(p.{c}, 0) AS old_{c}" for c in COUNTERS)}
FROM staged_accounts s
LEFT JOIN players p ON p.account_id = s.account_id
WHERE s.cycle_id = :cid
  AND ((p.account_id IS NULL AND s.battles > 0)
       OR (p.account_id IS NOT NULL
           AND ({", ".join(f"s.{c}" for c in COUNTERS)})
               IS DISTINCT FROM ({", ".join(f"p.{c}" for c in COUNTERS)})))
"""

_UPSERT_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in COUNTERS)

_TOTALS = f"""
INSERT INTO total_battles (account_id, date, platform, {_C})
SELECT account_id, :day, {_PLATFORM}, {_C} FROM cycle_changes
ON CONFLICT (account_id, date) DO UPDATE SET {_UPSERT_SET}
"""

_DIFFS = f"""
INSERT INTO diff_battles (account_id, date, platform, {_C})
SELECT account_id, :day, {_PLATFORM}, {", ".join(f"{c} - old_{c}" for c in COUNTERS)}
FROM cycle_changes
ON CONFLICT (account_id, date) DO UPDATE SET {_UPSERT_SET}
"""

_PLAYERS = f"""
WITH up AS (
  INSERT INTO players AS p (account_id, platform, nickname, created_at, last_battle_time,
                            {_C}, updated_at, last_seen)
  SELECT account_id, {_PLATFORM}, nickname, created_at, last_battle_time, {_C}, now(), :day
  FROM staged_accounts WHERE cycle_id = :cid
  ON CONFLICT (account_id) DO UPDATE SET
    nickname = EXCLUDED.nickname,
    created_at = EXCLUDED.created_at,
    last_battle_time = EXCLUDED.last_battle_time,
    {_UPSERT_SET},
    updated_at = now(),
    last_seen = CASE WHEN ({", ".join(f"p.{c}" for c in COUNTERS)})
                     IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in COUNTERS)})
                THEN EXCLUDED.last_seen ELSE p.last_seen END
  WHERE (p.nickname, p.created_at, p.last_battle_time, {", ".join(f"p.{c}" for c in COUNTERS)})
        IS DISTINCT FROM (EXCLUDED.nickname, EXCLUDED.created_at, EXCLUDED.last_battle_time,
                          {", ".join(f"EXCLUDED.{c}" for c in COUNTERS)})
  RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FROM up
"""

_HIGHEST = f"""
SELECT max(account_id) FILTER (WHERE account_id < {PS_THRESHOLD}),
       max(account_id) FILTER (WHERE account_id >= {PS_THRESHOLD})
FROM staged_accounts WHERE cycle_id = :cid
"""


@dataclass(frozen=True)
class DiffReport:
    cycle_id: int
    date: dt.date
    changed: int  # rows written to total_battles / diff_battles
    new_players: int
    updated_players: int
    highest: dict[str, int | None]


def compute_diffs(session: Session, cycle_id: int) -> DiffReport | None:
    """Diff the cycle against ``players``; ``None`` if the cycle is not in ``diffing``."""
    cycle = session.execute(
        select(Cycle).where(Cycle.id == cycle_id).with_for_update()
    ).scalar_one_or_none()
    if cycle is None or cycle.status != CycleStatus.diffing:
        return None
    conn = session.connection()
    params = {"cid": cycle_id, "day": cycle.date}
    ensure_month_partitions(conn, cycle.date)
    highest_xbox, highest_ps = conn.execute(text(_HIGHEST), params).one()
    conn.execute(text(_CHANGES), params)
    changed = conn.execute(text(_TOTALS), params).rowcount
    conn.execute(text(_DIFFS), params)
    new_players, touched = conn.execute(text(_PLAYERS), params).one()
    conn.execute(text("DROP TABLE cycle_changes"))
    drop_cycle_staging(conn, cycle_id)
    highest = {"xbox": highest_xbox, "ps": highest_ps}
    cycle.status = CycleStatus.growing
    cycle.diffed_at = func.now()
    cycle.status_changed_at = func.now()
    cycle.changed_players = changed
    cycle.new_players = new_players
    cycle.notes = {**(cycle.notes or {}), "highest": highest}
    log.info(
        "cycle %s (%s): %d changed, %d new, %d players rows touched",
        cycle_id, cycle.date, changed, new_players, touched,
    )  # fmt: skip
    return DiffReport(cycle_id, cycle.date, changed, new_players, touched - new_players, highest)
