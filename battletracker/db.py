"""Engine and session factories, the one database URL rule, and the COPY helper.

One driver on purpose: psycopg 3. Every spelling of a PostgreSQL URL a user may write
(``postgresql://``, ``postgres://``, ``postgresql+psycopg2://``, ``postgresql+psycopg://``)
is normalised to ``postgresql+psycopg://`` by :func:`database_url` and nowhere else; the
engines, Alembic, the demo and the test databases all go through it, so the bulk path
(:func:`copy_rows`, psycopg 3 ``cursor.copy()``) always finds the driver it was written
for. The store path never goes through the ORM: rows are COPYed inside the caller's
transaction, then one set-based statement moves them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import pq
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from .settings import Settings

__all__ = [
    "DRIVER",
    "copy_rows",
    "database_url",
    "dispose_engines",
    "engine_for",
    "make_engine",
    "psycopg_conninfo",
    "session_scope",
    "sessionmaker_for",
]

#: The SQLAlchemy driver name every engine uses.
DRIVER = "postgresql+psycopg"
_SPELLINGS = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}

_ENGINES: dict[str, Engine] = {}
_ACTIVE = pq.TransactionStatus.ACTIVE
log = logging.getLogger(__name__)


def database_url(url: str | URL) -> URL:
    """``url`` with its driver set to psycopg 3, whatever PostgreSQL spelling it used.

    Raises ``ValueError`` for a URL that is not PostgreSQL (settings validate that too).
    """
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername not in _SPELLINGS:
        raise ValueError(
            f"database URL scheme {parsed.drivername!r} is not PostgreSQL "
            "(postgresql://, postgresql+psycopg://, postgresql+psycopg2://)"
        )
    return parsed.set(drivername=DRIVER)


def psycopg_conninfo(url: str | URL) -> str:
    """The same database as a libpq URL, for code that talks to psycopg directly."""
    return database_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str | URL, **kw: Any) -> Engine:
    """An engine on the normalised URL (the only ``create_engine`` of the package)."""
    engine = create_engine(database_url(url), **kw)
    event.listen(engine, "reset", _cancel_running_query)
    return engine


def _cancel_running_query(dbapi_connection: Any, *_: Any) -> None:
    """Before a pooled connection is reset: cancel a statement still running on it.

    A task interrupted mid-statement (a soft time limit raises inside the driver's
    wait) leaves the server running it, holding its locks while it waits; a plain
    rollback then fails with "another command is already in progress". Cancelling
    first makes the server end it, and the pool then discards the connection.
    """
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is not None and pgconn.transaction_status == _ACTIVE:
        log.warning("cancelling a statement left running on a connection")
        with contextlib.suppress(Exception):
            dbapi_connection.cancel_safe(timeout=5)


def engine_for(settings: Settings) -> Engine:
    """One pooled engine per database URL per process (workers reuse it across tasks)."""
    url = settings.database_url
    engine = _ENGINES.get(url)
    if engine is None:
        engine = make_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        _ENGINES[url] = engine
    return engine


def dispose_engines() -> None:
    """Drop pooled connections (after fork, or when a test tears its database down)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def sessionmaker_for(settings: Settings) -> sessionmaker[Session]:
    return sessionmaker(engine_for(settings), expire_on_commit=False)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error.

    When the body is interrupted while a statement runs (a soft time limit, a signal),
    the statement is cancelled and the connection discarded, and the *original*
    exception propagates (not the failed rollback's): the caller's retry logic sees
    what really happened, and no server backend is left holding the transaction's locks.
    """
    session = sessionmaker_for(settings)()
    try:
        session.begin()
        try:
            yield session
        except BaseException:
            _abandon_running(session)
            with contextlib.suppress(Exception):
                session.rollback()
            raise
        session.commit()
    finally:
        with contextlib.suppress(Exception):
            session.close()


def _abandon_running(session: Session) -> None:
    """Cancel a statement still running in ``session`` and discard its connection."""
    try:
        conn = session.connection()
        raw = conn.connection.dbapi_connection
    except Exception:
        return
    pgconn = getattr(raw, "pgconn", None)
    if pgconn is not None and pgconn.transaction_status == _ACTIVE:
        _cancel_running_query(raw)
        conn.invalidate()


def copy_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    types: Sequence[str] | None = None,
) -> int:
    """COPY ``rows`` into ``table`` within ``conn``'s open transaction; returns the count.

    With ``types`` (PostgreSQL type names, one per column) the COPY is binary: no text
    escaping or parsing on either side, the fastest way this machine writes rows (see
    ``scripts/bench_store.py``). Without, it is text, where psycopg 3 adapts each Python
    value (a string meant for a ``float8`` column, say). ``table`` and ``columns`` are
    identifiers chosen by the code, never by input.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    fmt = " (FORMAT BINARY)" if types is not None else ""
    n = 0
    with raw.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
        f"COPY {table} ({', '.join(columns)}) FROM STDIN{fmt}"
    ) as copy:
        if types is not None:
            copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
            n += 1
    return n
