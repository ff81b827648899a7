"""compact boards: one stand-alone table per board and window, one B-tree and a BRIN

The LIST-partitioned ``leaderboard_entries`` of 0002 made every leaf carry the
partition keys (board, window) and the as-of date on every row, and three unique
B-trees: ~200 bytes per ranked row, 5x the disk of ``players`` at 1 M players. From
here a board is a stand-alone table ``lbe__<board>__<window>`` of 29 bytes of data a row,
written in (platform, platform_rank) order, with a unique B-tree on ``account_id`` and
a BRIN on ``(rank, platform_rank)`` (see :mod:`battletracker.stats.materialise`).

The existing boards are dropped, not converted: they are derived data the next night
(or ``battletracker stats materialise``) rebuilds; their build rows go with them, so
until then the boards read as never built (empty pages, ``as_of`` null) instead of
pointing at tables that no longer exist.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_DROP_BOARD_TABLES = """
DO $$ DECLARE t text; BEGIN
  FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relname LIKE 'lbe\\_\\_%'
             AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  LOOP
    EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', t);
  END LOOP;
END $$
"""


def upgrade() -> None:
    op.execute("DROP TABLE IF EXISTS leaderboard_entries CASCADE")
    op.execute(_DROP_BOARD_TABLES)
    op.execute("DELETE FROM leaderboard_builds")


def downgrade() -> None:
    op.execute(_DROP_BOARD_TABLES)
    op.execute("DELETE FROM leaderboard_builds")
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
        DO $$ BEGIN
          IF to_regrole('battletracker_boards') IS NOT NULL THEN
            ALTER TABLE leaderboard_entries OWNER TO battletracker_boards;
            GRANT SELECT ON leaderboard_entries TO battletracker_web;
            GRANT SELECT, INSERT, UPDATE, DELETE ON leaderboard_entries
              TO battletracker_worker;
          END IF;
        END $$
        """
    )
