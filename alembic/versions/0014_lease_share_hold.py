"""lease shares: a lowered share stays counted for a moment (``held_rps`` until ``held_until``)

When a node's share of a key is lowered at its renewal, the node slows down as soon as it
reads the answer, but the requests it sent in the last second still count against the
key at the API (a sliding one-second window, on the strict reading). Were the
difference free for another node at once, that node's first window could land on top
of them. So the difference stays counted for a couple of seconds
(``nodes.services.SHARE_HOLD``) before any other lease may take it.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "lease_shares",
        sa.Column("held_rps", sa.Float(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("lease_shares", sa.Column("held_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("lease_shares", "held_until")
    op.drop_column("lease_shares", "held_rps")
