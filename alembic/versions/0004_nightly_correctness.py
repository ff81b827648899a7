"""Nightly correctness: set-aside rows, partial nights, held chunks, recorded stages

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CYCLE = ("fetching", "diffing", "growing", "exporting", "done")
_CYCLE_NEW = ("fetching", "diffing", "growing", "materialising", "exporting", "done", "failed")
_CHUNK = ("pending", "dispatched", "stored", "rejected", "failed")
_CHUNK_NEW = (*_CHUNK, "held", "missed")


def _check(table: str, name: str, values: tuple[str, ...]) -> None:
    op.drop_constraint(name, table, type_="check")
    listed = ", ".join(f"'{v}'" for v in values)
    op.create_check_constraint(name, table, f"status IN ({listed})")


def upgrade() -> None:
    _check("cycles", "cycle_status", _CYCLE_NEW)
    _check("chunks", "chunk_status", _CHUNK_NEW)
    op.add_column("cycles", sa.Column("set_aside", sa.Integer(), server_default="0",
                                      nullable=False))
    op.add_column("cycles", sa.Column("anomalies", sa.Integer(), server_default="0",
                                      nullable=False))
    op.add_column("cycles", sa.Column("baseline_accounts", sa.BigInteger(), nullable=True))
    op.add_column("cycles", sa.Column("partial", sa.Boolean(), server_default="false",
                                      nullable=False))
    op.add_column("cycles", sa.Column("failed_stage", sa.String(length=32), nullable=True))
    op.add_column("cycles", sa.Column("error", sa.Text(), nullable=True))
    op.add_column("chunks", sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("chunks", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.add_column("diff_battles", sa.Column("days", sa.SmallInteger(), server_default="1",
                                            nullable=False))
    op.create_table(
        "set_aside_rows",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("chunk_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("row", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("node", sa.String(length=255), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.ForeignKeyConstraint(["cycle_id"], ["cycles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_set_aside_rows_cycle", "set_aside_rows", ["cycle_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_set_aside_rows_cycle", table_name="set_aside_rows")
    op.drop_table("set_aside_rows")
    op.drop_column("diff_battles", "days")
    for column in ("not_before", "progress_at"):
        op.drop_column("chunks", column)
    for column in ("error", "failed_stage", "partial", "baseline_accounts", "anomalies",
                   "set_aside"):
        op.drop_column("cycles", column)
    _check("chunks", "chunk_status", _CHUNK)
    _check("cycles", "cycle_status", _CYCLE)
