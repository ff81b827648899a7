"""leaderboards and daily activity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:00:00

``leaderboard_entries`` is partitioned twice: LIST (board), then LIST (time_window).
Each leaf ``lbe__<board>__<window>`` holds one board for one window, both platforms,
one row per ranked account with two ranks (over both platforms, and within the
account's platform). Leaves carry their own indexes and are built aside and swapped in
by :mod:`battletracker.stats.materialise`; this revision creates only the parents.
"""

from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE leaderboard_entries (
            account_id    bigint           NOT NULL,
            battles       bigint           NOT NULL,
            score         double precision NOT NULL,
            rank          integer          NOT NULL,
            platform_rank integer          NOT NULL,
            as_of         date             NOT NULL,
            board         text             NOT NULL,
            time_window   text             NOT NULL,
            platform      text             NOT NULL,
            CONSTRAINT ck_leaderboard_entries_window
                CHECK (time_window IN ('day', 'week', 'month', 'all')),
            CONSTRAINT ck_leaderboard_entries_platform CHECK (platform IN ('xbox', 'ps')),
            CONSTRAINT ck_leaderboard_entries_rank CHECK (rank > 0 AND platform_rank > 0)
        ) PARTITION BY LIST (board)
        """
    )
    op.execute(
        """
        CREATE TABLE leaderboard_builds (
            board       text             NOT NULL,
            time_window text             NOT NULL,
            as_of       date             NOT NULL,
            total       integer          NOT NULL,
            total_xbox  integer          NOT NULL,
            total_ps    integer          NOT NULL,
            method      text             NOT NULL,
            seconds     double precision NOT NULL,
            built_at    timestamptz      NOT NULL DEFAULT now(),
            CONSTRAINT pk_leaderboard_builds PRIMARY KEY (board, time_window),
            CONSTRAINT ck_leaderboard_builds_method CHECK (method IN ('sql', 'python'))
        )
        """
    )
    op.execute(
        """
        CREATE TABLE daily_activity (
            date            date        NOT NULL,
            platform        text        NOT NULL,
            active_accounts bigint      NOT NULL,
            battles         bigint      NOT NULL,
            new_accounts    bigint      NOT NULL,
            unique_7d       bigint      NOT NULL,
            unique_30d      bigint      NOT NULL,
            unique_90d      bigint      NOT NULL,
            computed_at     timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_daily_activity PRIMARY KEY (date, platform),
            CONSTRAINT ck_daily_activity_platform CHECK (platform IN ('xbox', 'ps'))
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS daily_activity")
    op.execute("DROP TABLE IF EXISTS leaderboard_builds")
    op.execute("DROP TABLE IF EXISTS leaderboard_entries CASCADE")
