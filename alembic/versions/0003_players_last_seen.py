"""players.last_seen index: the export and "changed that day" queries select by it

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_players_last_seen", "players", ["last_seen"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_players_last_seen", table_name="players")
