"""The database's three service accounts: owner (migrations), workers, and the web app.

- the **owner** is the user ``battletracker db upgrade`` connects as: it owns every table
  and runs the migrations;
- ``battletracker_worker`` reads and writes rows of every table but owns none of the
  pipeline's, so it cannot alter, drop or truncate them. The partitions a night needs
  are made by two ``SECURITY DEFINER`` functions the owner provides (month partitions of
  the daily tables, a cycle's staging area), the only DDL the worker may cause there.
  The leaderboards are derived data rebuilt by swapping whole tables (``lbe__*``, made
  by the worker and granted to the web role as they are made): the worker is a member of
  ``battletracker_boards``, which owns those tables and nothing else;
- ``battletracker_web`` may only read, but for its own login sessions (``web_sessions``:
  logout must be able to end one).

Migration 0007 creates the roles (NOLOGIN) and the grants; :func:`apply_roles` (run by
``db upgrade`` after the migrations) refreshes the grants on tables added since and gives
a role a password when the settings carry one, which lets it log in.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from .settings import Settings

__all__ = [
    "BOARDS_ROLE",
    "PIPELINE_FUNCTIONS",
    "WEB_ROLE",
    "WEB_WRITABLE",
    "WORKER_ROLE",
    "RoleCheck",
    "apply_roles",
    "check_roles",
    "grant_sql",
]

WEB_ROLE = "battletracker_web"
WORKER_ROLE = "battletracker_worker"
BOARDS_ROLE = "battletracker_boards"
#: Tables the web app itself writes (node registration and leases are served by it); the
#: web role gets INSERT/UPDATE/DELETE on these only, once they exist. Never a table of the
#: nightly pipeline or the statistics.
WEB_WRITABLE: tuple[str, ...] = (
    "web_sessions",  # logins (issue 15b)
    "nodes", "node_invites", "node_leases", "lease_shares", "key_reports", "api_keys",  # nodes
)
#: The owner's functions through which the worker makes the partitions of a night.
PIPELINE_FUNCTIONS = ("battletracker_month_partitions(date)",
                      "battletracker_cycle_staging(bigint, boolean)",
                      "battletracker_compact_snapshots(date)")


def _create_role(name: str) -> str:
    # Two migrations on one cluster at once (tests, two databases) may race to create the
    # same role: the loser's error is ignored, the role exists either way.
    return f"""
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
        BEGIN
          CREATE ROLE {name} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
      END IF;
    END $$"""


def grant_sql() -> list[str]:
    """Statements that create the roles and grant them what they may do (idempotent)."""
    return [
        _create_role(WEB_ROLE),
        _create_role(WORKER_ROLE),
        _create_role(BOARDS_ROLE),
        # the owner hands leaderboard_entries to the boards role: it must be able to
        f"""
        DO $$ BEGIN
          IF NOT pg_has_role(current_user, '{BOARDS_ROLE}', 'MEMBER') THEN
            EXECUTE format('GRANT {BOARDS_ROLE} TO %I', current_user);
          END IF;
        END $$""",
        f"""
        DO $$ BEGIN
          IF NOT pg_has_role('{WORKER_ROLE}', '{BOARDS_ROLE}', 'MEMBER') THEN
            BEGIN
              GRANT {BOARDS_ROLE} TO {WORKER_ROLE};
            EXCEPTION WHEN OTHERS THEN NULL;  -- granted meanwhile by another migration
            END;
          END IF;
        END $$""",
        # PostgreSQL 15 made this the default; older clusters let anyone create tables
        """
        DO $$ BEGIN
          IF pg_has_role(current_user, (SELECT nspowner FROM pg_namespace
                                        WHERE nspname = 'public'), 'USAGE') THEN
            GRANT CREATE ON SCHEMA public TO CURRENT_USER;
            REVOKE CREATE ON SCHEMA public FROM PUBLIC;
          END IF;
        END $$""",
        # reading: both; writing rows: the worker; nothing else for either
        f"GRANT USAGE ON SCHEMA public TO {WEB_ROLE}, {WORKER_ROLE}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {WEB_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {WORKER_ROLE}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {WORKER_ROLE}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {WEB_ROLE}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {WORKER_ROLE}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {WORKER_ROLE}",
        # the leaderboards' swap makes tables (CREATE on the schema) and drops the ones
        # they replace (owned by the boards role the worker belongs to); before revision
        # 0010 the boards were partitions of leaderboard_entries, which that role owned
        f"GRANT CREATE ON SCHEMA public TO {BOARDS_ROLE}",
        f"""
        DO $$ BEGIN
          IF to_regclass('leaderboard_entries') IS NOT NULL THEN
            ALTER TABLE leaderboard_entries OWNER TO {BOARDS_ROLE};
            GRANT SELECT ON leaderboard_entries TO {WEB_ROLE};
            GRANT SELECT, INSERT, UPDATE, DELETE ON leaderboard_entries TO {WORKER_ROLE};
          END IF;
        END $$""",
        f"""
        DO $$ DECLARE t text; BEGIN
          FOR t IN SELECT c.relname FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relname LIKE 'lbe\\_\\_%'
                     AND c.relkind IN ('r', 'p')
          LOOP
            EXECUTE format('ALTER TABLE %I OWNER TO {BOARDS_ROLE}', t);
          END LOOP;
        END $$""",
        f"""
        DO $$ DECLARE t text; s text; BEGIN
          FOREACH t IN ARRAY ARRAY[{", ".join(f"'{t}'" for t in WEB_WRITABLE) or "NULL"}]::text[]
          LOOP
            IF to_regclass(t) IS NOT NULL THEN
              EXECUTE format('GRANT INSERT, UPDATE, DELETE ON %I TO {WEB_ROLE}', t);
              FOR s IN SELECT pg_get_serial_sequence(t, attname) FROM pg_attribute
                       WHERE attrelid = to_regclass(t) AND attnum > 0 AND NOT attisdropped
                         AND pg_get_serial_sequence(t, attname) IS NOT NULL
              LOOP
                EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO {WEB_ROLE}', s);
              END LOOP;
            END IF;
          END LOOP;
        END $$""",
        *(_grant_function(f) for f in PIPELINE_FUNCTIONS),
    ]


def _grant_function(signature: str) -> str:
    # a migration older than a function's own runs these grants before it exists
    return f"""
    DO $$ BEGIN
      IF to_regprocedure('{signature}') IS NOT NULL THEN
        REVOKE ALL ON FUNCTION {signature} FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION {signature} TO {WORKER_ROLE};
      END IF;
    END $$"""


def apply_roles(conn: Connection, settings: Settings) -> list[str]:
    """Refresh the grants and set the passwords the settings carry; returns the roles that
    may now log in. Runs as the owner (``db upgrade``), inside ``conn``'s transaction."""
    for statement in grant_sql():
        conn.execute(text(statement))
    enabled = []
    for role, password in ((WEB_ROLE, settings.db_web_password),
                           (WORKER_ROLE, settings.db_worker_password)):
        if not password:
            continue
        quoted = conn.execute(text("SELECT quote_literal(:p)"), {"p": password}).scalar_one()
        # roles are the cluster's: another database's upgrade may update the same row at
        # once ("tuple concurrently updated"); a savepoint and a second try settle it
        for attempt in range(3):
            try:
                with conn.begin_nested():
                    conn.execute(text(f"ALTER ROLE {role} LOGIN PASSWORD {quoted}"))
                break
            except DBAPIError:
                if attempt == 2:
                    raise
        enabled.append(role)
    return enabled


@dataclass(frozen=True)
class RoleCheck:
    """What one role may do in the connected database."""

    role: str
    exists: bool
    can_login: bool
    reads: bool
    writes: bool
    alters_pipeline: bool

    def problem(self) -> str | None:
        """The role's trouble in plain words with the fix, or None."""
        fix = "run 'battletracker db upgrade' as the database owner"
        if not self.exists:
            return f"role {self.role} is missing: {fix}"
        if not self.reads:
            return f"role {self.role} cannot read the tables: {fix}"
        if self.role == WEB_ROLE and self.writes:
            return (f"role {self.role} may write, it must only read: revoke INSERT, UPDATE, "
                    f"DELETE from it and {fix}")
        if self.role == WORKER_ROLE and not self.writes:
            return f"role {self.role} cannot write the pipeline's tables: {fix}"
        if self.alters_pipeline:
            return (f"role {self.role} owns or may alter the pipeline's tables: make the owner "
                    f"own them again (ALTER TABLE … OWNER TO the owner) and {fix}")
        return None


def check_roles(conn: Connection) -> list[RoleCheck]:
    """Inspect the web and worker roles on the pipeline's central tables."""
    out = []
    for role in (WEB_ROLE, WORKER_ROLE):
        row = conn.execute(text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"),
                           {"r": role}).first()
        if row is None:
            out.append(RoleCheck(role, False, False, False, False, False))
            continue
        q = conn.execute(text("""
            SELECT bool_and(has_table_privilege(:r, t, 'SELECT')) AS reads,
                   bool_or(has_table_privilege(:r, t, 'INSERT')
                           OR has_table_privilege(:r, t, 'UPDATE')) AS writes,
                   bool_or(pg_has_role(:r, c.relowner, 'USAGE')) AS owns
            FROM unnest(ARRAY['players', 'cycles', 'chunks', 'total_battles',
                              'diff_battles', 'platform_ranges']) AS t
            JOIN pg_class c ON c.oid = to_regclass(t)
        """), {"r": role}).one()
        out.append(RoleCheck(role, True, bool(row[0]), bool(q.reads), bool(q.writes),
                             bool(q.owns)))
    return out
