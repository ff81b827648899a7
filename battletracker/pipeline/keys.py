"""This process's API keys: one limiter per key kept across tasks, dead keys remembered.

A fetch worker is one process. It may run several chunks at once in threads (``-P
threads -c N``), so that requests keep flowing while one chunk waits for its last
answers and the next starts; every task of the process shares the key's one limiter
(thread-safe), so each key has exactly one budget on this node and its rate, lowered
after limit errors, carries over to the next chunk.
"""

from __future__ import annotations

import threading

from ..settings import Settings
from ..wargaming.client import WargamingClient
from ..wargaming.ratelimit import TokenBucket
from .fetch import KeySlot, concurrency_for

__all__ = ["forget_keys", "mark_dead", "slots_for"]

_BUCKETS: dict[str, TokenBucket] = {}
_DEAD: set[str] = set()
_LOCK = threading.Lock()


def slots_for(settings: Settings) -> list[KeySlot]:
    """Fresh clients (one event loop per task) over the process's lasting limiters."""
    if not settings.wg_keys:
        from ..wargaming.errors import KeyUnusable

        raise KeyUnusable("no API key configured (BATTLETRACKER_WG_KEYS)")
    slots = []
    for key in settings.wg_keys:
        with _LOCK:
            bucket = _BUCKETS.get(key.app_id)
            if bucket is None or bucket.configured != key.rps:
                bucket = _BUCKETS[key.app_id] = TokenBucket(key.rps)
        client = WargamingClient(
            settings.wg_api_url, key.app_id, timeout=settings.request_timeout
        )
        concurrency = settings.fetch_concurrency or concurrency_for(key.rps)
        slot = KeySlot(client, bucket, concurrency=concurrency, dead=key.app_id in _DEAD)
        slots.append(slot)
    return slots


def mark_dead(app_id: str) -> None:
    """Never use ``app_id`` again in this process (the API said it is unusable)."""
    _DEAD.add(app_id)


def forget_keys() -> None:
    """Start over (tests; a node that got a new key)."""
    _BUCKETS.clear()
    _DEAD.clear()
