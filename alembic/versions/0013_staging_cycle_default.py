"""a night's staging partition knows its cycle: ``cycle_id`` defaults to it

The store COPYs a chunk's rows straight into the cycle's partition
(``pipeline/staging.py``). With the cycle as the partition's default the COPY leaves the
column out: the client no longer builds a new row with the cycle in front of every row
it sends, nor encodes it, and the server parses one field less per row. The partition's
bound (``FOR VALUES IN``) is unchanged, so a row can still hold no other cycle.

``battletracker_cycle_staging`` (0007) makes new partitions with the default; the
partitions of nights still in flight get it here.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

#: pg_advisory_xact_lock key shared with the partition functions of 0007 ("btpa").
_LOCK_KEY = 0x6274_7061


def _cycle_staging(default: bool) -> str:
    columns = "(cycle_id DEFAULT %s) " if default else ""
    args = "cycle_id, cycle_id" if default else "cycle_id"
    return f"""
CREATE OR REPLACE FUNCTION battletracker_cycle_staging(cycle_id bigint, present boolean)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM pg_advisory_xact_lock({_LOCK_KEY});
  IF present THEN
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF staged_accounts {columns}FOR VALUES IN (%s)',
                   'staged_accounts_c' || cycle_id, {args});
  ELSE
    EXECUTE format('DROP TABLE IF EXISTS %I', 'staged_accounts_c' || cycle_id);
  END IF;
END $$
"""


#: The partitions that exist now get their cycle as default (their bound's one value).
_EXISTING = r"""
DO $$
DECLARE
  part regclass;
  cycle text;
BEGIN
  FOR part IN SELECT inhrelid::regclass FROM pg_inherits
              WHERE inhparent = 'staged_accounts'::regclass LOOP
    cycle := substring(part::text FROM 'staged_accounts_c(\d+)$');
    IF cycle IS NOT NULL THEN
      EXECUTE format('ALTER TABLE %s ALTER COLUMN cycle_id SET DEFAULT %s', part, cycle);
    END IF;
  END LOOP;
END $$
"""


def upgrade() -> None:
    op.execute(_cycle_staging(default=True))
    op.execute(_EXISTING)


def downgrade() -> None:
    op.execute(_cycle_staging(default=False))
