"""This process's API keys: one lasting request stream per key, dead keys remembered.

A fetch worker is one process. It runs several chunks at once in threads (``-P threads
-c N``), so that requests keep flowing while one chunk waits for its last answers and
the next one starts. :func:`fetch_on_node` runs every chunk of the process on one
event loop in a background thread, over one lasting client (pooled connections) and
one limiter per key: each key has exactly one budget on this node, its connections are
not set up again per chunk, and its rate, lowered after limit errors, carries over.
One loop also means one scheduler deciding when requests leave, which keeps the gap
between a grant and the request's arrival small (the limiter's margin absorbs it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from ..settings import ApiKey, Settings
from ..wargaming.client import WargamingClient
from ..wargaming.ratelimit import KeyPacer
from .fetch import KeySlot, concurrency_for, fetch_chunk
from .result import ChunkSpec, FetchResult

__all__ = [
    "fetch_on_node",
    "follow_shares",
    "forget_keys",
    "mark_dead",
    "run_on_node_loop",
    "slots_for",
]

T = TypeVar("T")

#: How early a lasting pacer grants: the request goes through the HTTP client meanwhile
#: and waits at the wire for its slot (``WargamingClient.account_info``'s ``before_send``),
#: so the client's own path (and the loop's other work) is not added to every slot's cycle.
WIRE_LEAD = 0.03

_BUCKETS: dict[str, KeyPacer] = {}
_DEAD: set[str] = set()
_LOCK = threading.Lock()
#: (api url, app id, timeout) -> a client living on the node loop
_CLIENTS: dict[tuple[str, str, float], WargamingClient] = {}
_LOOP: asyncio.AbstractEventLoop | None = None


def _node_loop() -> asyncio.AbstractEventLoop:
    global _LOOP
    with _LOCK:
        if _LOOP is None or _LOOP.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="fetch-loop", daemon=True)
            thread.start()
            _LOOP = loop
        return _LOOP


def run_on_node_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the process's fetch loop and wait for it (from any thread)."""
    return asyncio.run_coroutine_threadsafe(coro, _node_loop()).result()


def _bucket(app_id: str, rps: float, margin: float) -> KeyPacer:
    """The key's one pacer in this process; a new rate (a lease's new share) is applied to
    it in place, so the chunks already running follow it and the last second's requests
    still count (a second pacer would spend a whole window on top of the first)."""
    with _LOCK:
        bucket = _BUCKETS.get(app_id)
        if bucket is None or bucket.margin != margin:
            bucket = _BUCKETS[app_id] = KeyPacer(rps, margin=margin, lead=WIRE_LEAD)
        else:
            bucket.reconfigure(rps)
        return bucket


def follow_shares(keys: Iterable[ApiKey]) -> None:
    """Apply a renewed lease's shares to this process's pacers of those keys now.

    A chunk takes its keys' rates when it starts; a lease renewed while chunks run would
    otherwise lower their pace only at the next chunk's start (tens of seconds at full
    size), while the server may already have given the difference to another node.
    """
    with _LOCK:
        paced = [(_BUCKETS[k.app_id], k.rps) for k in keys if k.app_id in _BUCKETS]
    for bucket, rps in paced:
        bucket.reconfigure(rps)


def _lasting_slots(settings: Settings) -> list[KeySlot]:
    """Slots over lasting clients; only ever called on the node loop."""
    if not settings.wg_keys:
        from ..wargaming.errors import KeyUnusable

        raise KeyUnusable("no API key configured (BATTLETRACKER_WG_KEYS)")
    slots = []
    for key in settings.wg_keys:
        ident = (settings.wg_api_url, key.app_id, settings.request_timeout)
        client = _CLIENTS.get(ident)
        if client is None:
            client = _CLIENTS[ident] = WargamingClient(
                settings.wg_api_url, key.app_id, timeout=settings.request_timeout
            )
        concurrency = settings.fetch_concurrency or concurrency_for(key.rps)
        # the key's requests in flight whatever the chunks in progress (issue 16: every
        # further connection costs CPU on each request, in httpcore's pool)
        client.limit_in_flight(concurrency)
        bucket = _bucket(key.app_id, key.rps, settings.fetch_rate_margin)
        slots.append(KeySlot(client, bucket, concurrency=concurrency, dead=key.app_id in _DEAD))
    return slots


async def _fetch_lasting(spec: ChunkSpec, settings: Settings, node: str) -> FetchResult:
    slots = _lasting_slots(settings)
    try:
        return await fetch_chunk(spec, slots, node=node)
    finally:
        for slot in slots:
            if slot.dead:
                mark_dead(slot.app_id)


def fetch_on_node(spec: ChunkSpec, settings: Settings, node: str = "") -> FetchResult:
    """Fetch one chunk on the process's lasting request streams (callable from any thread).

    Errors propagate as :func:`fetch_chunk` raises them; a key found unusable is
    remembered for the life of the process.
    """
    return run_on_node_loop(_fetch_lasting(spec, settings, node))


def slots_for(settings: Settings) -> list[KeySlot]:
    """Fresh clients (for a caller's own event loop) over the process's lasting limiters."""
    if not settings.wg_keys:
        from ..wargaming.errors import KeyUnusable

        raise KeyUnusable("no API key configured (BATTLETRACKER_WG_KEYS)")
    slots = []
    for key in settings.wg_keys:
        bucket = _bucket(key.app_id, key.rps, settings.fetch_rate_margin)
        client = WargamingClient(settings.wg_api_url, key.app_id, timeout=settings.request_timeout)
        concurrency = settings.fetch_concurrency or concurrency_for(key.rps)
        slot = KeySlot(client, bucket, concurrency=concurrency, dead=key.app_id in _DEAD)
        slots.append(slot)
    return slots


def mark_dead(app_id: str) -> None:
    """Never use ``app_id`` again in this process (the API said it is unusable)."""
    _DEAD.add(app_id)


def forget_keys() -> None:
    """Start over (tests; a node that got a new key); lasting clients are dropped."""
    with _LOCK:
        _BUCKETS.clear()
        _DEAD.clear()
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
        loop = _LOOP
    if loop is not None and clients and not loop.is_closed():
        for client in clients:
            asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(10)
