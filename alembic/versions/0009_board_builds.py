"""board_builds: the boards stage of a night as recorded pieces, each its own task

One row per piece of a cycle's ``materialising`` stage (a window's sums, one board over
one window, the day's activity): its state, attempts and timings. The stage moves on to
``exporting`` when the last piece is done; the reaper re-sends a lost piece.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "board_builds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("time_window", sa.String(length=16), nullable=False),
        sa.Column("board", sa.String(length=64), nullable=False),
        sa.Column("state", sa.Enum("pending", "running", "done", "failed", name="piece_state",
                                   native_enum=False, create_constraint=True, length=16),
                  nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["cycle_id"], ["cycles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cycle_id", "time_window", "board", name="uq_board_builds_piece"),
    )
    op.create_index("ix_board_builds_cycle_state", "board_builds", ["cycle_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_board_builds_cycle_state", table_name="board_builds")
    op.drop_table("board_builds")
