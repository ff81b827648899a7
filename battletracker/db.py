"""Engine and session factories, and the COPY helper of the bulk write path.

The store path never goes through the ORM: rows are COPYed (psycopg2 ``copy_expert``,
text format) inside the caller's transaction, then one set-based statement moves them.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from .settings import Settings

__all__ = ["copy_rows", "engine_for", "session_scope", "sessionmaker_for"]

_ENGINES: dict[str, Engine] = {}


def engine_for(settings: Settings) -> Engine:
    """One pooled engine per database URL per process (workers reuse it across tasks)."""
    url = settings.database_url
    engine = _ENGINES.get(url)
    if engine is None:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
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


def _escape(value: Any) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, str):
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return str(value)


def copy_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """COPY ``rows`` into ``table`` within ``conn``'s open transaction; returns the count.

    ``table`` and ``columns`` are identifiers chosen by the code, never by input.
    """
    buf = io.StringIO()
    n = 0
    for row in rows:
        buf.write("\t".join(_escape(v) for v in row))
        buf.write("\n")
        n += 1
    if n == 0:
        return 0
    buf.seek(0)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cur = raw.cursor()
    try:
        cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buf)
    finally:
        cur.close()
    return n
