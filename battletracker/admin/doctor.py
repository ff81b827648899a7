"""``battletracker doctor``: check a whole installation and say what is wrong and how to fix it.

Each check is a plain function returning :class:`Check` rows; none raises, so one broken
service never hides the state of the others. The checks are those an operator needs before
a night: the database (reachable, a supported major, migrated, the service roles), the
broker (reachable, the queues and their consumers), the API keys (each answers a request),
Elasticsearch (reachable, of the major the client speaks), the clock (against the
database's, which the reaper uses) and free disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ..settings import Settings, mask_url
from ..supported import SERVICES

__all__ = ["Check", "Status", "run_checks"]

Status = Literal["ok", "warning", "error", "skipped"]

#: The clocks of this machine and of the database may differ by this much.
MAX_CLOCK_SKEW = dt.timedelta(seconds=5)
#: Below either, free disk is a warning; below a tenth of them, an error.
MIN_FREE_BYTES = 5 * 2**30
MIN_FREE_SHARE = 0.10
#: An account id that exists on the real API (and in the simulator's population).
PROBE_ACCOUNT = 1_073_740_000


@dataclass(frozen=True)
class Check:
    """One finding: which part, how it stands, what was seen, and the fix when not ok."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _error(name: str, detail: str, fix: str) -> Check:
    return Check(name, "error", detail, fix)


# -- database -----------------------------------------------------------------------------


def check_database(settings: Settings) -> list[Check]:
    """Reachable, a supported PostgreSQL major, migrated to head, the roles in order."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from ..migrate import alembic_config
    from ..roles import check_roles

    where = mask_url(settings.database_url)
    engine = create_engine(settings.database_url, connect_args={"connect_timeout": 5},
                           pool_pre_ping=False)
    out: list[Check] = []
    try:
        with engine.connect() as conn:
            version_num = int(conn.execute(text("SHOW server_version_num")).scalar_one())
            db_now = conn.execute(text("SELECT now()")).scalar_one()
            major = version_num // 10000
            supported = SERVICES["postgresql"]
            if supported.accepts(major):
                out.append(Check("database", "ok", f"PostgreSQL {major} at {where}"))
            else:
                out.append(Check("database", "warning",
                                 f"PostgreSQL {major} at {where} is not a tested major",
                                 f"use {supported} ({supported.note})"))
            current = MigrationContext.configure(conn).get_current_revision()
            head = ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
            if current == head:
                out.append(Check("migrations", "ok", f"at revision {current} (head)"))
            else:
                out.append(_error(
                    "migrations", f"the database is at revision {current or 'none'}, the code "
                    f"needs {head}", "run 'battletracker db upgrade' as the database owner"))
            if current is not None:
                for role in check_roles(conn):
                    problem = role.problem()
                    login = "may log in" if role.can_login else "no password set"
                    out.append(Check(f"role {role.role}", "ok" if problem is None else "error",
                                     f"{login}; reads" + (", writes rows" if role.writes
                                                          else ", read-only")
                                     if problem is None else problem,
                                     None if problem is None else
                                     "battletracker db upgrade (with the role passwords set)"))
            out.append(_clock(db_now))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        out.append(_error("database", f"cannot connect to {where}: {reason}",
                          "start PostgreSQL (systemctl start postgresql, or docker-compose up "
                          "-d postgres) and check database_url (user, password, database)"))
        out.append(Check("clock", "skipped", "no database clock to compare with"))
    finally:
        engine.dispose()
    return out


def _clock(db_now: dt.datetime) -> Check:
    skew = dt.datetime.now(dt.UTC) - db_now
    seconds = abs(skew.total_seconds())
    if abs(skew) <= MAX_CLOCK_SKEW:
        return Check("clock", "ok", f"within {seconds:.1f} s of the database's clock")
    return _error("clock", f"this machine's clock is {seconds:.0f} s off the database's",
                  "run a time service on both machines (systemd-timesyncd or chrony): chunks "
                  "are re-sent by age and nights start by the clock")


# -- broker -------------------------------------------------------------------------------


def check_broker(settings: Settings) -> list[Check]:
    """Reachable; the server worker consumes ``store`` and ``control``; nodes ``fetch``."""
    import kombu

    from ..pipeline.queues import queue_depths

    where = mask_url(settings.broker_url)
    try:
        with kombu.Connection(settings.broker_url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
            props = getattr(conn.connection, "server_properties", {}) or {}
            version = props.get("version", b"?")
            version = version.decode() if isinstance(version, bytes) else str(version)
        depths = queue_depths(settings.broker_url, timeout=5)
    except Exception as exc:  # kombu raises many kinds; all mean "unreachable"
        return [_error("broker", f"cannot connect to {where}: {exc}",
                       "start RabbitMQ (systemctl start rabbitmq-server, or docker-compose up "
                       "-d rabbitmq) and check broker_url (user, password, vhost)")]
    out = [Check("broker", "ok", f"RabbitMQ {version} at {where}")]
    for queue, (ready, consumers) in depths.items():
        detail = f"{ready} waiting, {consumers} consumer(s)"
        if consumers:
            out.append(Check(f"queue {queue}", "ok", detail))
        elif queue == "fetch":
            out.append(Check(f"queue {queue}", "warning", detail + ": no node is fetching",
                             "start a volunteer node or a local fetch worker "
                             "(celery -A battletracker.fetcher worker -Q fetch)"))
        else:
            out.append(_error(f"queue {queue}", detail + ": the server worker is not running",
                              "start it: celery -A battletracker worker -Q store,control "
                              "(docker-compose up -d worker)"))
    return out


# -- API keys -----------------------------------------------------------------------------


def _pool_keys(settings: Settings) -> list[tuple[str, float]]:
    """The active keys of the server's pool (``api_keys``, leased to nodes); [] if none or
    the database cannot tell (its own check reports that)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(settings.database_url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            if conn.execute(text("SELECT to_regclass('api_keys')")).scalar() is None:
                return []
            rows = conn.execute(text("SELECT app_id, rps FROM api_keys "
                                     "WHERE state = 'active' ORDER BY id")).all()
        return [(str(r[0]), float(r[1])) for r in rows]
    except SQLAlchemyError:
        return []
    finally:
        engine.dispose()


def check_keys(settings: Settings) -> list[Check]:
    """Each key of this machine (``wg_keys``) and of the pool leased to nodes answers one
    ``account/info`` request."""
    from ..wargaming.client import WargamingClient
    from ..wargaming.errors import KeyUnusable, WargamingError

    keys = {k.app_id: ("wg_keys", k.rps) for k in settings.wg_keys}
    for app_id, rps in _pool_keys(settings):
        keys.setdefault(app_id, ("pool", rps))
    if not keys:
        return [Check("keys", "warning", "no key in wg_keys nor in the pool",
                      "add one: battletracker keys add APPID --rps 10 (the pool leased "
                      "to nodes), or wg_keys = 'appid:rps' on this machine")]

    async def probe(app_id: str) -> str | None:
        async with WargamingClient(settings.wg_api_url, app_id, timeout=10) as client:
            try:
                await client.account_info([PROBE_ACCOUNT], fields=("account_id",))
            except KeyUnusable as exc:
                return f"refused: {exc.api_message or exc}"
            except WargamingError as exc:
                return f"no answer: {exc}"
        return None

    out = []
    for app_id, (source, rps) in keys.items():
        shown = app_id[:4] + "…"
        problem = asyncio.run(probe(app_id))
        if problem is None:
            out.append(Check(f"key {shown}", "ok", f"answers ({source}, {rps:g} requests/s)"))
        else:
            where = "the pool (battletracker keys disable APPID)" if source == "pool" \
                else "wg_keys"
            out.append(_error(f"key {shown}", f"{source}: {problem}",
                              "check the application id on developers.wargaming.net (type "
                              f"'Server', this server's IP allowed) or remove it from {where}"))
    return out


# -- Elasticsearch ------------------------------------------------------------------------


def check_elasticsearch(settings: Settings) -> list[Check]:
    """Reachable and of the major the client speaks (the one of docker-compose.yml)."""
    if settings.elasticsearch_url is None:
        return [Check("elasticsearch", "skipped", "elasticsearch_url not set: no export")]
    from elasticsearch import ApiError, TransportError

    from ..elastic.client import check_server, connect

    where = mask_url(settings.elasticsearch_url)
    try:
        client = connect(settings, timeout=5, max_retries=0)
        try:
            found = check_server(client)
        finally:
            client.close()
    except (ApiError, TransportError, KeyError, ValueError) as exc:
        return [_error("elasticsearch", f"cannot query {where}: {exc}",
                       "start it (docker-compose --profile elastic up -d) and check "
                       "elasticsearch_url, or unset it to switch the export off")]
    problem = found.problem()
    if problem is not None:
        return [_error("elasticsearch", f"server {found.server_version} at {where}", problem)]
    return [Check("elasticsearch", "ok",
                  f"server {found.server_version}, client {found.client_version} at {where}")]


# -- disk ---------------------------------------------------------------------------------


def check_disk(paths: Iterable[Path]) -> list[Check]:
    out = []
    for path in paths:
        usage = shutil.disk_usage(path)
        free_gib = usage.free / 2**30
        share = usage.free / usage.total if usage.total else 0.0
        detail = f"{free_gib:.1f} GiB free ({share:.0%}) at {path}"
        if usage.free >= MIN_FREE_BYTES and share >= MIN_FREE_SHARE:
            out.append(Check("disk", "ok", detail))
            continue
        severe = usage.free < MIN_FREE_BYTES / 10 or share < MIN_FREE_SHARE / 10
        out.append(Check("disk", "error" if severe else "warning", detail,
                         "free space (old logs, docker system prune) or grow the volume: "
                         "PostgreSQL stops writing when its disk is full"))
    return out


def run_checks(settings: Settings, *, disk_paths: Iterable[Path] = (Path("."),),
               skip: Iterable[str] = ()) -> list[Check]:
    """Every check, in order; ``skip`` names groups to leave out (``keys``, ...)."""
    groups: dict[str, Callable[[], list[Check]]] = {
        "database": lambda: check_database(settings),
        "broker": lambda: check_broker(settings),
        "keys": lambda: check_keys(settings),
        "elasticsearch": lambda: check_elasticsearch(settings),
        "disk": lambda: check_disk(disk_paths),
    }
    skipped = set(skip)
    out: list[Check] = []
    for name, run in groups.items():
        if name in skipped:
            out.append(Check(name, "skipped", "skipped (--skip)"))
            continue
        out.extend(run())
    return out
