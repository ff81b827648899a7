"""Async reads for the hot lookups (board pages, ranks, around, players) over psycopg 3.

The sync routes run in FastAPI's threadpool, each through a pooled SQLAlchemy session:
under 50 concurrent readers the threads, the GIL and the session machinery cost more
than the index lookups themselves. These routes instead await a plain psycopg
``AsyncConnection`` on the event loop: autocommit (one statement, never a transaction
left open to delay the nightly swap of the boards), every statement prepared on first
use (``prepare_threshold=0``), the same SQL as :mod:`battletracker.stats.queries`.

Connections are made lazily in the running loop (one set per worker process, and a new
set when the loop changes, as it does between test clients); a connection that fails
is dropped, not returned.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import make_url

from ..stats import queries
from ..stats.registry import default_registry

__all__ = ["AsyncReader", "conninfo_of"]

#: Connections per worker process.
POOL_SIZE = 8


def conninfo_of(database_url: str) -> str:
    """The libpq URL of a SQLAlchemy URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    """``:name`` placeholders (SQLAlchemy's) as psycopg's ``%(name)s``."""
    return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", sql.replace("%", "%%"))


class AsyncReader:
    """A small pool of async connections and the lookups run on them."""

    def __init__(self, database_url: str, size: int = POOL_SIZE) -> None:
        self.conninfo = conninfo_of(database_url)
        self.size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.LifoQueue[psycopg.AsyncConnection[Any]] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._seen_built: set[tuple[str, str]] = set()

    def _bind(self) -> tuple[asyncio.LifoQueue[psycopg.AsyncConnection[Any]],
                             asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._idle is None or self._slots is None:
            self._loop = loop
            self._idle = asyncio.LifoQueue()
            self._slots = asyncio.Semaphore(self.size)
        return self._idle, self._slots

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        idle, slots = self._bind()
        async with slots:
            conn = idle.get_nowait() if not idle.empty() else None
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, prepare_threshold=0,
                    row_factory=namedtuple_row)
            try:
                yield conn
            except BaseException:
                await conn.close()  # whatever state it is in, it is not reused
                raise
            idle.put_nowait(conn)

    async def close(self) -> None:
        idle = self._idle
        while idle is not None and not idle.empty():
            await idle.get_nowait().close()

    async def _all(self, sql: str, params: dict[str, Any]) -> Sequence[Any]:
        async with self.connection() as conn:
            cur = await conn.execute(_pyformat(sql), params)
            return await cur.fetchall()

    async def boards_version(self) -> str:
        """What changes whenever any board is swapped in (see :mod:`.pagecache`)."""
        rows = await self._all("SELECT max(built_at) AS at, count(*) AS n "
                               "FROM leaderboard_builds", {})
        return f"{rows[0].at}/{rows[0].n}"

    async def _built(self) -> set[tuple[str, str]]:
        """The (board, window) pairs built; asked until a board is seen built, then
        remembered (a board's table is only ever replaced, see ``queries.BUILT_SQL``)."""
        rows = await self._all(queries.BUILT_SQL, {})
        self._seen_built.update((r.board, r.time_window) for r in rows)
        return self._seen_built

    async def _is_built(self, board: str, window: str) -> bool:
        return (board, window) in self._seen_built or (board, window) in await self._built()

    async def top(self, board: str, window: str, platform: str, *, offset: int,
                  limit: int) -> queries.Page:
        sql, params = queries.top_sql(board, window, platform, offset=offset, limit=limit)
        rows = await self._all(sql, params) if await self._is_built(board, window) else []
        return queries.top_page(rows, board, window, platform, offset=offset, limit=limit)

    async def rank_of(self, board: str, window: str, platform: str,
                      account_id: int) -> queries.Entry:
        sql, params = queries.rank_sql(board, window, platform, account_id)
        rows = await self._all(sql, params) if await self._is_built(board, window) else []
        return queries.rank_entry(rows[0] if rows else None, board, window, platform,
                                  account_id)

    async def around(self, board: str, window: str, platform: str, account_id: int, *,
                     n: int) -> list[queries.Entry]:
        sql, params = queries.around_sql(board, window, platform, account_id, n=n)
        rows = await self._all(sql, params) if await self._is_built(board, window) else []
        return queries.around_entries(rows, board, window, platform, account_id)

    async def player(self, account_id: int) -> tuple[queries.PlayerStats,
                                                     dict[str, queries.Entry]]:
        """A player's stats and all-time ranks: two statements sent together (pipeline
        mode), so one round trip to the server."""
        stats_sql, stats_params = queries.player_stats_sql(account_id)
        built = {b for b, w in self._seen_built if w == "all"}
        if len(built) < len(default_registry().scorers()):
            built = {b for b, w in await self._built() if w == "all"}
        ranks = queries.player_ranks_sql(account_id, window="all", built=built)
        async with self.connection() as conn:
            async with conn.pipeline():
                stats_cur = await conn.execute(_pyformat(stats_sql), stats_params)
                ranks_cur = conn.cursor()
                if ranks is not None:
                    await ranks_cur.execute(_pyformat(ranks[0]), ranks[1])
            row = await stats_cur.fetchone()
            rank_rows = await ranks_cur.fetchall() if ranks is not None else []
        return queries.player_stats_of(row, account_id), queries.player_ranks_of(rank_rows)
