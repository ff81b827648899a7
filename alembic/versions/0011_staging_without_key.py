"""staged_accounts without its primary key

Keeping the (cycle_id, account_id) key cost the store about a third of its COPY. Each
account is staged once without it: a chunk is stored once (its row lock and status in
``pipeline/store.py``), a result holds each id of its chunk once (checked before the
COPY, ``pipeline/staging.py``), and a cycle's chunks do not overlap. A duplicate that
got in anyway would make ``compute_diffs`` fail loudly (an upsert cannot touch a row
twice), never count twice. Staging is read whole, by cycle (its partition), so no query
needs the key's index; the one ranged delete (a quarantined node's chunks) scans the
partition once.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE staged_accounts DROP CONSTRAINT IF EXISTS staged_accounts_pkey")


def downgrade() -> None:
    op.execute("ALTER TABLE staged_accounts ADD PRIMARY KEY (cycle_id, account_id)")
