"""Fetch one chunk: 100-id requests paced per key, several in flight, errors by class.

:func:`fetch_chunk` is a plain coroutine over a list of :class:`KeySlot` (a client and
its limiter); the Celery task in :mod:`battletracker.pipeline.fetch_task` only builds the
slots from settings and runs it. What each error class does:

- ``RequestLimitExceeded``: the key's limiter slows down, the same request is repeated.
- ``TransientError`` (504, transport, 5xx, garbage): backoff and repeat, up to a bound,
  then the error propagates (the task retries later).
- ``KeyUnusable``: the slot is dropped, its batch goes to another key; with no key left
  the error propagates (the node stops fetching).
- ``RequestBug``, ``MethodDisabled``: propagate at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .. import validation
from ..wargaming.client import WargamingClient
from ..wargaming.errors import BadResponse, KeyUnusable, RequestLimitExceeded, TransientError
from ..wargaming.ratelimit import RateLimiter
from .chunking import batches
from .result import ChunkSpec, FetchResult, Row

__all__ = ["FetchStats", "KeySlot", "RetryPolicy", "account_row", "fetch_chunk"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one request is retried inside a task before the task gives up."""

    transient_tries: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0
    limit_tries: int = 50

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter (attempt 1, 2, ...)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass
class KeySlot:
    """One application id: its client, its limiter, and whether it still works."""

    client: WargamingClient
    limiter: RateLimiter
    concurrency: int = 4
    dead: bool = False

    @property
    def app_id(self) -> str:
        return self.client.app_id


@dataclass
class FetchStats:
    requests: int = 0
    limit_errors: int = 0
    retries: int = 0
    dead_keys: list[str] = field(default_factory=list)


def concurrency_for(rate: float, latency: float = 1.0) -> int:
    """Requests to keep in flight so that ``rate`` is reached at ``latency`` s per answer.

    The pacer lets a whole window's requests go within half a window after a stall, and
    no more than that can be in flight while answers take under a second: a window's
    worth (plus two for retries) never holds a due request back. Spare slots cost an idle
    coroutine (and connections only while they are used); too few lose budget for good.
    """
    return max(2, min(64, math.ceil(rate * latency) + 2))


def account_row(account_id: int, obj: dict[str, Any]) -> Row:
    """The compact row of one account object; a malformed object is a bad answer.

    The conversion is :func:`battletracker.validation.account_row`, shared with the
    server's checks: odd values (a negative counter, a strange nickname) are sent as
    the API gave them and judged by the server, row by row.
    """
    try:
        return validation.account_row(account_id, obj)
    except ValueError as exc:
        raise BadResponse(str(exc)) from None


def _once(limiter: RateLimiter, stamp: float | None) -> Callable[[], None]:
    """``limiter.sent(stamp)`` on the first call only: every grant is sent exactly once."""
    done = stamp is None

    def on_send() -> None:
        nonlocal done
        if not done:
            done = True
            limiter.sent(stamp)  # type: ignore[arg-type]

    return on_send


async def _request(
    slot: KeySlot, ids: list[int], policy: RetryPolicy, stats: FetchStats, priority: float
) -> list[Row]:
    """One batch, retried by error class; a malformed account is a bad (transient) answer."""
    transient = limits = 0
    while True:
        stamp = await slot.limiter.acquire(priority)
        stats.requests += 1
        on_send = _once(slot.limiter, stamp)
        before_send = None
        if stamp is not None:
            before_send = partial(slot.limiter.wire, stamp)
            if not getattr(slot.client, "gates_at_wire", False):
                await before_send()  # no hook at the wire: wait for the slot here
                before_send = None
        try:
            try:
                info = await slot.client.account_info(
                    ids, on_send=on_send, before_send=before_send
                )
            finally:
                on_send()  # failed before (or without) the trace: count it from now
            rows = [account_row(i, obj) for i, obj in info.items() if obj is not None]
        except RequestLimitExceeded as exc:
            limits += 1
            stats.limit_errors += 1
            slot.limiter.slow_down()
            if limits >= policy.limit_tries:
                raise
            await asyncio.sleep(min(exc.retry_after, 1.0) * random.uniform(0.2, 1.0))
            continue
        except TransientError as exc:
            transient += 1
            stats.retries += 1
            if transient >= policy.transient_tries:
                raise
            log.info("retrying %s after %s", ids[0], exc)
            await asyncio.sleep(policy.delay(transient))
            continue
        slot.limiter.succeeded()
        return rows


async def fetch_chunk(
    spec: ChunkSpec,
    slots: Sequence[KeySlot],
    *,
    node: str = "",
    policy: RetryPolicy | None = None,
) -> FetchResult:
    """Fetch every id of ``spec`` over the usable ``slots``; one row per existing account."""
    policy = policy or RetryPolicy()
    live = [s for s in slots if not s.dead]
    if not live:
        raise KeyUnusable("no usable API key on this node", account_ids=[spec.first_id])
    started = time.monotonic()
    pending: deque[list[int]] = deque(batches(spec.first_id, spec.last_id))
    outstanding = len(pending)
    found: list[Row] = []
    stats = FetchStats()
    changed = asyncio.Event()  # a batch was done or handed back

    async def worker(slot: KeySlot) -> None:
        nonlocal outstanding
        while not slot.dead:
            if not pending:
                if outstanding == 0:
                    return
                changed.clear()  # another worker may hand a batch back: wait, no polling
                await changed.wait()
                continue
            ids = pending.popleft()
            try:
                rows = await _request(slot, ids, policy, stats, started)
            except KeyUnusable:
                pending.appendleft(ids)
                changed.set()
                if not slot.dead:
                    slot.dead = True
                    stats.dead_keys.append(slot.app_id)
                    log.error("API key %s is unusable: dropping it", slot.app_id[:4] + "…")
                if all(s.dead for s in slots):
                    raise
                return
            found.extend(rows)
            outstanding -= 1
            changed.set()

    try:
        async with asyncio.TaskGroup() as group:
            for slot in live:
                for _ in range(max(1, slot.concurrency)):
                    group.create_task(worker(slot))
    except* Exception as eg:  # surface the first real error, not the group
        raise eg.exceptions[0] from None

    rows = sorted(found)
    return FetchResult(
        spec=spec,
        rows=rows,
        empty=spec.size - len(rows),
        node=node,
        seconds=round(time.monotonic() - started, 3),
        stats={
            "requests": stats.requests,
            "limit_errors": stats.limit_errors,
            "retries": stats.retries,
        },
    )
