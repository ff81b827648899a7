"""Compute a cycle's daily rows and update ``players``: a handful of set-based statements.

The rule for nights (design.md, issue 13): nights apply in date order, whatever order
they finish in. A night is diffed only when no earlier night is still open (fetching or
diffing): then ``players`` holds, for every account, its latest snapshot before this
night, and ``new - players`` is each account's change since its own previous snapshot.
A night that is not done when the next one is due is closed as partial
(:func:`~battletracker.pipeline.coordinator.close_open_nights`), so it never holds the
next one back for long, and a result arriving for it afterwards is refused.

1. ``cycle_changes`` (a temp table): staged accounts that are new with battles, or whose
   counters differ from ``players``, with the old counters beside the new, the date the
   account's id was last read before (``prev_obs``, from the stored chunks of earlier
   nights) and how the row counts:

   - ``diff``: an account seen before whose counters grew: ``diff_battles`` gets new
     minus old, and ``days`` = this date - the last night that read it (2 if it was
     missed one night: both days' play, counted once, on this date);
   - ``new``: an account seen for the first time that is really new (its id was read
     empty by an earlier night, or it was created on or after the previous night's
     date): its counters count whole;
   - ``baseline``: a first sighting that is not new: the platform's first night, or ids
     no earlier night could read (a missed chunk, a range grown over old accounts).
     Its lifetime is not one day's play: a snapshot only, no diff;
   - ``decrease``: a counter went down. Not a negative diff: the row is recorded in
     ``set_aside_rows`` (kind ``decrease``) and counted on the cycle; the new counters
     become the account's baseline (a snapshot, no diff).

2. ``total_battles`` gets every change as a snapshot, ``diff_battles`` the ``diff`` and
   ``new`` rows, for the cycle's date.
3. ``players`` is upserted only where something changed (``IS DISTINCT FROM``), and
   never from a night older than its ``last_seen`` (it never moves back in date).
4. The staging partition is dropped; the cycle moves on to ``growing``.

Everything runs in the caller's transaction with the cycle row locked, under one
advisory lock for all diffs, and only when the cycle is in ``diffing``: a second
delivery waits for the first, then does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, or_, select, text
from sqlalchemy.orm import Session

from ..constants import COUNTERS, PS_THRESHOLD, platform_sql
from ..models import Cycle, CycleStatus
from .partitions import drop_cycle_staging, ensure_month_partitions

__all__ = ["DiffReport", "compute_diffs", "earlier_open_night", "next_night_to_diff"]

log = logging.getLogger(__name__)

_C = ", ".join(COUNTERS)
_PLATFORM = platform_sql("account_id")
_LOCK_KEY = 0x6274_6466  # "btdf": one diff at a time
_EPOCH = dt.date(1970, 1, 1)
_OPEN = (CycleStatus.fetching, CycleStatus.diffing)

#: Spans of ids read by earlier nights (stored chunks) and the last date each was read.
_PREV_OBS = """
CREATE TEMP TABLE prev_obs ON COMMIT DROP AS
SELECT int8range(k.first_id, k.last_id, '[]') AS span, max(c.date) AS date
FROM chunks k JOIN cycles c ON c.id = k.cycle_id
WHERE k.status = 'stored' AND c.date < :day
GROUP BY 1
"""

_CHANGES = f"""
CREATE TEMP TABLE cycle_changes ON COMMIT DROP AS
SELECT s.account_id, {", ".join(f"s.{c}" for c in COUNTERS)},
       {", ".join(f"COALESCE(p.{c}, 0) AS old_{c}" for c in COUNTERS)},
       p.account_id IS NULL AS first_seen,
       p.account_id IS NOT NULL AND ({" OR ".join(f"s.{c} < p.{c}" for c in COUNTERS)})
           AS decreased,
       s.created_at,
       (SELECT o.date FROM prev_obs o WHERE o.span @> s.account_id
        ORDER BY o.date DESC LIMIT 1) AS prev_obs,
       p.last_seen
FROM staged_accounts s
LEFT JOIN players p ON p.account_id = s.account_id
WHERE s.cycle_id = :cid
  AND ((p.account_id IS NULL AND s.battles > 0)
       OR (p.account_id IS NOT NULL
           AND ({", ".join(f"s.{c}" for c in COUNTERS)})
               IS DISTINCT FROM ({", ".join(f"p.{c}" for c in COUNTERS)})))
"""

#: How each change counts (see the module docstring); ``:baseline_*`` say whether the
#: platform has had no earlier night, ``:prev_*`` (Unix seconds) when its last one was.
_KIND = f"""
UPDATE cycle_changes SET
  kind = CASE
    WHEN decreased THEN 'decrease'
    WHEN NOT first_seen THEN 'diff'
    WHEN (CASE WHEN account_id < {PS_THRESHOLD} THEN :baseline_xbox ELSE :baseline_ps END)
      THEN 'baseline'
    WHEN prev_obs IS NOT NULL THEN 'new'
    WHEN created_at >= (CASE WHEN account_id < {PS_THRESHOLD} THEN :prev_xbox
                             ELSE :prev_ps END) THEN 'new'
    ELSE 'baseline' END,
  days = LEAST(32767, GREATEST(1, :day - COALESCE(prev_obs, last_seen, :day - 1)))
"""

_UPSERT_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in COUNTERS)

_TOTALS = f"""
INSERT INTO total_battles (account_id, date, platform, {_C})
SELECT account_id, :day, {_PLATFORM}, {_C} FROM cycle_changes
ON CONFLICT (account_id, date) DO UPDATE SET {_UPSERT_SET}
"""

_DIFFS = f"""
INSERT INTO diff_battles (account_id, date, platform, days, {_C})
SELECT account_id, :day, {_PLATFORM}, days, {", ".join(f"{c} - old_{c}" for c in COUNTERS)}
FROM cycle_changes WHERE kind IN ('diff', 'new')
ON CONFLICT (account_id, date) DO UPDATE SET days = EXCLUDED.days, {_UPSERT_SET}
"""

_DECREASES = f"""
INSERT INTO set_aside_rows (cycle_id, account_id, kind, reason, row)
SELECT :cid, account_id, 'decrease',
       'counters went down since the previous snapshot: '
         || concat_ws(', ', {", ".join(
             f"CASE WHEN {c} < old_{c} THEN '{c} ' || old_{c} || ' -> ' || {c} END"
             for c in COUNTERS)}),
       jsonb_build_object('old', jsonb_build_array({", ".join(f"old_{c}" for c in COUNTERS)}),
                          'new', jsonb_build_array({_C}))
FROM cycle_changes WHERE kind = 'decrease'
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
  WHERE p.last_seen <= EXCLUDED.last_seen
    AND (p.nickname, p.created_at, p.last_battle_time, {", ".join(f"p.{c}" for c in COUNTERS)})
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

#: Per platform: the last earlier night that stored any chunk of it (None: first night).
_PREVIOUS_NIGHT = """
SELECT k.platform, max(c.date) FROM chunks k JOIN cycles c ON c.id = k.cycle_id
WHERE k.status = 'stored' AND c.date < :day GROUP BY k.platform
"""


@dataclass(frozen=True)
class DiffReport:
    cycle_id: int
    date: dt.date
    changed: int  # rows written to total_battles (snapshots)
    new_players: int
    updated_players: int
    highest: dict[str, int | None]
    #: rows written to diff_battles (counted as this date's play)
    diffs: int = 0
    #: first sightings not counted as play (the platform's first night, unreadable ids)
    baseline: int = 0
    #: accounts whose counters went down (recorded, a new baseline, no diff)
    anomalies: int = 0


#: A night not diffed yet: fetching, diffing, or failed in its diffs (the operator's
#: ``cycle retry`` resumes it; later nights wait for it rather than overtake it).
_NOT_DIFFED = or_(
    Cycle.status.in_(_OPEN),
    and_(Cycle.status == CycleStatus.failed, Cycle.failed_stage == CycleStatus.diffing.value),
)


def earlier_open_night(session: Session, day: dt.date) -> Cycle | None:
    """The latest night before ``day`` not diffed yet, if any."""
    return session.execute(
        select(Cycle).where(Cycle.date < day, _NOT_DIFFED).order_by(Cycle.date.desc()).limit(1)
    ).scalar_one_or_none()


def next_night_to_diff(session: Session) -> int | None:
    """The earliest night waiting in ``diffing`` whose turn it is (none open before it)."""
    first_open = session.execute(
        select(Cycle.id, Cycle.status).where(_NOT_DIFFED).order_by(Cycle.date).limit(1)
    ).one_or_none()
    if first_open is None or first_open.status != CycleStatus.diffing:
        return None
    return int(first_open.id)


def _unix(day: dt.date) -> int:
    return (day - _EPOCH).days * 86_400


def _classify(conn: Connection, cycle_id: int, day: dt.date) -> dict[str, int]:
    previous: dict[str, dt.date] = {
        str(p): d for p, d in conn.execute(text(_PREVIOUS_NIGHT), {"day": day}).all()
    }
    params = {
        "day": day,
        "baseline_xbox": "xbox" not in previous,
        "baseline_ps": "ps" not in previous,
        # a first sighting created on or after the platform's previous night is new
        "prev_xbox": _unix(previous["xbox"]) if "xbox" in previous else 0,
        "prev_ps": _unix(previous["ps"]) if "ps" in previous else 0,
    }
    conn.execute(text(_PREV_OBS), {"day": day})
    conn.execute(text("CREATE INDEX ON prev_obs USING gist (span)"))
    conn.execute(text("ANALYZE prev_obs"))
    conn.execute(text(_CHANGES), {"cid": cycle_id})
    conn.execute(text("ALTER TABLE cycle_changes ADD COLUMN kind text, ADD COLUMN days smallint"))
    conn.execute(text(_KIND), params)
    kinds: dict[str, int] = {
        str(k): int(n)
        for k, n in conn.execute(text("SELECT kind, count(*) FROM cycle_changes GROUP BY 1"))
    }
    return {k: int(kinds.get(k, 0)) for k in ("diff", "new", "baseline", "decrease")}


def compute_diffs(session: Session, cycle_id: int) -> DiffReport | None:
    """Diff the cycle against ``players``.

    ``None`` if the cycle is not in ``diffing``, or if an earlier night is still open
    (then this one waits its turn: the earlier night's diff sends it on).
    """
    conn = session.connection()
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    cycle = session.execute(
        select(Cycle).where(Cycle.id == cycle_id).with_for_update()
    ).scalar_one_or_none()
    if cycle is None or cycle.status != CycleStatus.diffing:
        return None
    earlier = earlier_open_night(session, cycle.date)
    if earlier is not None:
        log.info(
            "cycle %s (%s) waits: the night of %s (cycle %s) is still %s",
            cycle_id, cycle.date, earlier.date, earlier.id, earlier.status.value,
        )  # fmt: skip
        return None
    params = {"cid": cycle_id, "day": cycle.date}
    ensure_month_partitions(conn, cycle.date)
    highest_xbox, highest_ps = conn.execute(text(_HIGHEST), params).one()
    kinds = _classify(conn, cycle_id, cycle.date)
    changed = conn.execute(text(_TOTALS), params).rowcount
    diffs = conn.execute(text(_DIFFS), params).rowcount
    conn.execute(text(_DECREASES), params)
    new_players, touched = conn.execute(text(_PLAYERS), params).one()
    conn.execute(text("DROP TABLE cycle_changes"))
    conn.execute(text("DROP TABLE prev_obs"))
    drop_cycle_staging(conn, cycle_id)
    highest = {"xbox": highest_xbox, "ps": highest_ps}
    cycle.status = CycleStatus.growing
    cycle.diffed_at = func.now()
    cycle.status_changed_at = func.now()
    cycle.changed_players = changed
    cycle.new_players = new_players
    cycle.baseline_accounts = kinds["baseline"]
    cycle.anomalies = kinds["decrease"]
    cycle.notes = {**(cycle.notes or {}), "highest": highest, "diffs": diffs}
    if kinds["decrease"]:
        log.warning("cycle %s: %d accounts' counters went down (recorded in set_aside_rows)",
                    cycle_id, kinds["decrease"])  # fmt: skip
    log.info(
        "cycle %s (%s): %d changed, %d diffs, %d new players, %d baseline, %d touched",
        cycle_id, cycle.date, changed, diffs, new_players, kinds["baseline"], touched,
    )  # fmt: skip
    return DiffReport(
        cycle_id, cycle.date, changed, new_players, touched - new_players, highest,
        diffs=diffs, baseline=kinds["baseline"], anomalies=kinds["decrease"],
    )  # fmt: skip
