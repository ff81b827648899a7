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

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
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
    return create_engine(database_url(url), **kw)


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
    """A session in one transaction: committed on success, rolled back on error."""
    with sessionmaker_for(settings).begin() as session:
        yield session


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
