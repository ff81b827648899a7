"""Service roles: a read-only web role, a worker role that cannot alter the pipeline's tables

The worker makes the partitions of a night through two SECURITY DEFINER functions of the
owner (fixed names, typed arguments, pinned search_path), never by DDL of its own.

Revision ID: 0007
Revises: 0005
"""

from __future__ import annotations

from alembic import op

from battletracker.roles import PIPELINE_FUNCTIONS, grant_sql

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None

#: pg_advisory_xact_lock key shared with battletracker/pipeline/partitions.py ("btpa").
_LOCK_KEY = 0x6274_7061

MONTH_PARTITIONS = f"""
CREATE OR REPLACE FUNCTION battletracker_month_partitions(day date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  first date := date_trunc('month', day)::date;
  next date := (date_trunc('month', day) + interval '1 month')::date;
  t text;
BEGIN
  PERFORM pg_advisory_xact_lock({_LOCK_KEY});
  FOREACH t IN ARRAY ARRAY['total_battles', 'diff_battles'] LOOP
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   t || '_' || to_char(first, 'YYYY_MM'), t, first, next);
  END LOOP;
END $$
"""

CYCLE_STAGING = f"""
CREATE OR REPLACE FUNCTION battletracker_cycle_staging(cycle_id bigint, present boolean)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM pg_advisory_xact_lock({_LOCK_KEY});
  IF present THEN
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF staged_accounts FOR VALUES IN (%s)',
                   'staged_accounts_c' || cycle_id, cycle_id);
  ELSE
    EXECUTE format('DROP TABLE IF EXISTS %I', 'staged_accounts_c' || cycle_id);
  END IF;
END $$
"""


def upgrade() -> None:
    op.execute(MONTH_PARTITIONS)
    op.execute(CYCLE_STAGING)
    for statement in grant_sql():
        op.execute(statement)


def downgrade() -> None:
    # The roles are the cluster's (other databases may use them): only this database's
    # grants and functions go.
    for role in ("battletracker_web", "battletracker_worker"):
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
        op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}")
    op.execute("ALTER TABLE leaderboard_entries OWNER TO CURRENT_USER")
    for function in PIPELINE_FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
