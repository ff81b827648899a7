"""web sessions kept server-side; a case-insensitive prefix index on players.nickname

``web_sessions`` lets logout and a removed operator end a session for good; the
read-only web role may write this table, and only this one. The plain
btree ``ix_players_nickname`` served no query (a case-insensitive prefix search cannot
use it) and is replaced by one over ``lower(nickname) text_pattern_ops`` (byte order), which a range
condition on the lowered prefix scans whatever the database's collation.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

from battletracker.roles import WEB_ROLE

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=True),
        sa.Column("operator_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("guest", sa.Boolean(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("nickname", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    op.create_index("ix_web_sessions_operator", "web_sessions", ["operator"])
    # the read-only web role (0007) writes its own sessions and nothing else
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON web_sessions TO {WEB_ROLE}")
    op.drop_index("ix_players_nickname", table_name="players")
    op.execute("CREATE INDEX ix_players_nickname_lower ON players "
               "(lower(nickname) text_pattern_ops)")


def downgrade() -> None:
    op.drop_index("ix_players_nickname_lower", table_name="players")
    op.create_index("ix_players_nickname", "players", ["nickname"])
    op.drop_index("ix_web_sessions_operator", table_name="web_sessions")
    op.drop_index("ix_web_sessions_expires_at", table_name="web_sessions")
    op.drop_table("web_sessions")
