"""snapshot retention: a month of total_battles past the daily horizon keeps its Sundays

``total_battles`` holds a snapshot of every account on each day it changed; the diffs are
kept for ever, so a snapshot adds no information a player's history needs beyond a
weekly point (his total on any day is his current total minus the diffs after it). Past
``snapshot_daily_days`` (90 by default) a month partition is rewritten with only its
Sunday rows by ``battletracker_compact_snapshots(month)``, an owner's function the
workers' role may run (as it may the partition functions of 0007): copy the Sundays into
a fresh table, swap it in for the month (detach, drop, rename, attach), record it in
``snapshot_compactions``. One transaction: a failure leaves the month as it was.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

from battletracker.roles import WORKER_ROLE

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: pg_advisory_xact_lock key of the partition functions (0007): a compaction and the
#: creation of a month's partitions never run at once.
_LOCK_KEY = 0x6274_7061
_SIGNATURE = "battletracker_compact_snapshots(date)"

COMPACT = f"""
CREATE OR REPLACE FUNCTION battletracker_compact_snapshots(month date) RETURNS bigint[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  first date := date_trunc('month', month)::date;
  next date := (date_trunc('month', month) + interval '1 month')::date;
  part text := 'total_battles_' || to_char(date_trunc('month', month), 'YYYY_MM');
  fresh text := part || '_sundays';
  kept bigint;
  total bigint;
BEGIN
  PERFORM pg_advisory_xact_lock({_LOCK_KEY});
  IF to_regclass(part) IS NULL
     OR EXISTS (SELECT 1 FROM snapshot_compactions c WHERE c.month = first) THEN
    RETURN NULL;
  END IF;
  EXECUTE format('SELECT count(*) FROM %I', part) INTO total;
  EXECUTE format('CREATE TABLE %I (LIKE total_battles INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', fresh);
  EXECUTE format('INSERT INTO %I SELECT * FROM %I WHERE extract(isodow FROM date) = 7 '
                 'ORDER BY date, account_id', fresh, part);
  GET DIAGNOSTICS kept = ROW_COUNT;
  -- proves the bound, so ATTACH does not scan the table again
  EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (date >= %L AND date < %L)',
                 fresh, part || '_bound', first, next);
  -- readers of a player's history wait at most this long for the swap, then it fails
  -- and is tried again the next day
  PERFORM set_config('lock_timeout', '10s', true);
  EXECUTE format('ALTER TABLE total_battles DETACH PARTITION %I', part);
  EXECUTE format('DROP TABLE %I', part);
  EXECUTE format('ALTER TABLE %I RENAME TO %I', fresh, part);
  EXECUTE format('ALTER TABLE total_battles ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                 part, first, next);
  INSERT INTO snapshot_compactions (month, rows_before, rows_after)
  VALUES (first, total, kept);
  RETURN ARRAY[total, kept];
END $$
"""


def upgrade() -> None:
    op.create_table(
        "snapshot_compactions",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("rows_before", sa.BigInteger, nullable=False),
        sa.Column("rows_after", sa.BigInteger, nullable=False),
        sa.Column("compacted_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )
    op.execute(COMPACT)
    op.execute(f"REVOKE ALL ON FUNCTION {_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {_SIGNATURE} TO {WORKER_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {_SIGNATURE}")
    op.drop_table("snapshot_compactions")
