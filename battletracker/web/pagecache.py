"""The serialised answers of public board and player lookups, reused until the boards change.

A leaderboard only changes when the nightly build swaps it in, so an anonymous reader's
top page, rank, "around" or HTML board page is the same bytes for everyone until then.
:class:`PageCacheMiddleware` keeps those bytes (status, headers, body) per normalised
request, serves them without entering FastAPI at all, and answers ``If-None-Match`` with
304. Invalidation: every :data:`CHECK_SECONDS` the boards' version (``max(built_at)`` and
``count(*)`` of ``leaderboard_builds``, one tiny query: :meth:`.AsyncReader.boards_version`)
is read in the background; a change drops every entry. So a page outlives the swap of its
board by :data:`CHECK_SECONDS` (plus that query) at most, twice that if the database
stops answering; a player's own page (counters change during the night's store, not at
the swap) is also dropped :data:`PLAYER_MAX_AGE` seconds after it was stored.

What is never cached or served from here, so every security behaviour stays the app's:
requests with the session cookie, any request while the guest login is on (the gate must
see it), methods other than GET, query strings with a repeated parameter, answers other
than 200/404, answers that set a cookie. Bounded: :data:`MAX_ENTRIES` entries and
:data:`MAX_BYTES` of bodies per process, least recently used dropped first.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import SESSION_COOKIE

__all__ = [
    "CHECK_SECONDS",
    "MAX_BYTES",
    "MAX_ENTRIES",
    "PLAYER_MAX_AGE",
    "PageCache",
    "PageCacheMiddleware",
]

log = logging.getLogger(__name__)

#: Longest time a page may outlive the swap of its board (also its ``max-age``).
CHECK_SECONDS = 5.0
#: Longest life of a cached player page: its ranks change with the boards (and are
#: dropped with them), its counters only during the night's store.
PLAYER_MAX_AGE = 60.0
#: Entries and body bytes kept per process.
MAX_ENTRIES = 50_000
MAX_BYTES = 128 * 1024 * 1024

#: The routes served from the cache (anything else goes straight to the app).
_BOARD = re.compile(r"^(/api/v1/boards/[A-Za-z0-9_.-]{1,64}(/(rank|around)/[0-9]{1,19})?"
                    r"|/boards/[A-Za-z0-9_.-]{1,64})$")
_PLAYER = re.compile(r"^/api/v1/players/[0-9]{1,19}$")
_COOKIE = SESSION_COOKIE.encode() + b"="


@dataclass(frozen=True)
class Entry:
    """One stored answer."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    etag: bytes
    expires: float
    route: Any


class PageCache:
    """An LRU of answers, emptied when the boards' version changes.

    The version is read in the background (requests never wait for it) at most every
    ``check_seconds``; only when no reading is younger than twice that (the first
    request, or a database that stopped answering) does a request wait for one, so an
    answer is never served more than ``2 * check_seconds`` after its board changed, and
    normally within ``check_seconds`` plus one small query.
    """

    def __init__(self, version: Callable[[], Awaitable[str]], *,
                 check_seconds: float = CHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._version = version
        self.check_seconds = check_seconds
        self.clock = clock
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.bytes = 0
        self.generation = 0
        self.current: str | None = None
        self.checked_at = -float("inf")
        self._checking: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        """Start a reading of the version when the last is older than ``check_seconds``;
        wait for it only when the last is older than twice that. False: no reading is
        young enough (the database did not answer), so the cache must not be used."""
        age = self.clock() - self.checked_at
        if age < self.check_seconds:
            return True
        task = self._checking
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._checking = asyncio.create_task(self._check())
        if age < 2 * self.check_seconds:
            return True
        await asyncio.shield(task)
        return self.clock() - self.checked_at < 2 * self.check_seconds

    async def _check(self) -> None:
        asked = self.clock()
        try:
            version = await self._version()
        except Exception as exc:  # the request that needs it goes to the app instead
            log.warning("page cache: the boards' version could not be read: %s", exc)
            return
        if version != self.current:
            self.clear()
            self.current = version
        self.checked_at = asked

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
        self.generation += 1

    def get(self, key: str) -> Entry | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._drop(key)
            return None
        self.entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry, generation: int) -> None:
        """Store unless the version changed while the answer was being made."""
        if generation != self.generation or len(entry.body) > MAX_BYTES // 16:
            return
        if key in self.entries:
            self._drop(key)
        self.entries[key] = entry
        self.bytes += len(entry.body)
        while len(self.entries) > MAX_ENTRIES or self.bytes > MAX_BYTES:
            _, old = self.entries.popitem(last=False)
            self.bytes -= len(old.body)

    def _drop(self, key: str) -> None:
        old = self.entries.pop(key)
        self.bytes -= len(old.body)


def cache_key(scope: Scope) -> str | None:
    """The normalised request (path and sorted query), or None when it must not be cached."""
    if scope["method"] != "GET" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not (_BOARD.match(path) or _PLAYER.match(path)):
        return None
    for name, value in scope["headers"]:
        if name == b"cookie" and _COOKIE in value:
            return None
    raw = scope.get("query_string", b"")
    if not raw:
        return path
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):  # which one wins is the app's business
        return None
    return f"{path}?{urlencode(sorted(pairs))}"


def _etag_matches(scope: Scope, etag: bytes) -> bool:
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            return any(t.strip() in (etag, b"W/" + etag, b"*") for t in value.split(b","))
    return False


class PageCacheMiddleware:
    """Pure ASGI: serves :class:`PageCache` hits, fills it on misses (see the module)."""

    def __init__(self, app: ASGIApp, cache: PageCache, *, enabled: Callable[[], bool]) -> None:
        self.app = app
        self.cache = cache
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = cache_key(scope) if scope["type"] == "http" and self.enabled() else None
        if key is None:
            await self.app(scope, receive, send)
            return
        if not await self.cache.refresh():
            await self.app(scope, receive, send)
            return
        entry = self.cache.get(key)
        if entry is not None:
            scope["route"] = entry.route  # the metrics' label, as on a miss
            await _send(entry, scope, send, hit=True)
            return
        generation = self.cache.generation
        start: Message | None = None
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, collect)
        if start is None:
            return
        body = b"".join(chunks)
        headers = tuple((bytes(n).lower(), bytes(v)) for n, v in start.get("headers", ()))
        status = int(start["status"])
        cacheable = status in (200, 404) and all(n != b"set-cookie" for n, _ in headers)
        ttl = PLAYER_MAX_AGE if _PLAYER.match(scope["path"]) else float("inf")
        entry = Entry(status, headers, body, b'"' + hashlib.blake2b(body, digest_size=16)
                      .hexdigest().encode() + b'"', self.cache.clock() + ttl, scope.get("route"))
        if cacheable:
            self.cache.put(key, entry, generation)
            await _send(entry, scope, send, hit=False)
            return
        await send(start)
        await send({"type": "http.response.body", "body": body})


async def _send(entry: Entry, scope: Scope, send: Send, *, hit: bool) -> None:
    headers = [*entry.headers,
               (b"etag", entry.etag),
               # a CDN may keep it as long as this process does between checks; never
               # for a visitor with a session (their pages may differ)
               (b"cache-control", b"public, max-age=%d" % int(CHECK_SECONDS)),
               (b"vary", b"Cookie"),
               (b"x-cache", b"hit" if hit else b"miss")]
    if entry.status == 200 and _etag_matches(scope, entry.etag):
        headers = [(n, v) for n, v in headers if n not in (b"content-length", b"content-type")]
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": entry.status, "headers": headers})
    await send({"type": "http.response.body", "body": entry.body})
