"""A whole cycle in this one process, with no broker: ``battletracker cycle run``.

For a single-machine operator and for tests of the stages. It calls exactly the stage
functions the Celery tasks call (create, fetch, store, diffs, ranges, finish), so the
database ends up the same as after a night through RabbitMQ.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import select

from ..db import session_scope
from ..models import Chunk, ChunkStatus, Cycle, CycleStatus
from ..settings import Settings
from ..wargaming.client import WargamingClient
from ..wargaming.ratelimit import NoLimit, RateLimiter, TokenBucket
from .boards import materialise_cycle
from .coordinator import close_open_nights, create_cycle
from .diffs import compute_diffs
from .fetch import KeySlot, concurrency_for, fetch_chunk
from .finish import finish_cycle
from .ranges import grow_ranges
from .result import ChunkSpec, InvalidResult
from .store import mark_rejected, store_result

__all__ = ["CycleSummary", "Progress", "advance", "run_cycle"]

log = logging.getLogger(__name__)

#: Called after each chunk with (chunks done, chunks total, accounts so far).
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class CycleSummary:
    cycle_id: int
    date: dt.date
    status: str
    chunks: int
    accounts: int
    changed: int | None
    new_players: int | None
    growth: list[dict[str, int | str]]


def _slots(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> list[KeySlot]:
    slots = []
    for key in settings.wg_keys:
        limiter: RateLimiter = TokenBucket(key.rps) if transport is None else NoLimit()
        client = WargamingClient(
            settings.wg_api_url, key.app_id, timeout=settings.request_timeout,
            transport=transport,
        )  # fmt: skip
        conc = settings.fetch_concurrency or concurrency_for(key.rps)
        slots.append(KeySlot(client, limiter, concurrency=conc))
    return slots


async def _fetch_all(
    settings: Settings,
    specs: Sequence[ChunkSpec],
    transport: httpx.AsyncBaseTransport | None,
    progress: Progress | None,
    total: int,
    done: int,
) -> None:
    slots = _slots(settings, transport)
    accounts = 0
    try:
        for spec in specs:
            result = await fetch_chunk(spec, slots, node="local")
            message = result.to_message()
            try:
                with session_scope(settings) as session:
                    store_result(session, message)
            except InvalidResult as exc:  # cannot happen with our own fetcher; be honest
                with session_scope(settings) as session:
                    mark_rejected(session, message, str(exc))
                raise
            done += 1
            accounts += len(result.rows)
            if progress:
                progress(done, total, accounts)
    finally:
        for slot in slots:
            await slot.client.aclose()


def run_cycle(
    settings: Settings,
    date: dt.date,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    after_diffs: Callable[[int], None] | None = None,
) -> CycleSummary:
    """Run (or finish) the cycle of ``date`` here; ``transport`` swaps the HTTP layer.

    As beat would: earlier nights still fetching are closed as partial first
    (:func:`~.coordinator.close_open_nights`); then every recorded stage of every open
    night runs, in date order. A date before the latest night raises
    :class:`~.coordinator.CycleRefused`. With a ``transport`` (the in-process simulator)
    requests are not paced; over real HTTP each key's token bucket applies as in a
    worker. ``after_diffs`` (a cycle id) runs after each night's diffs.
    """
    with session_scope(settings) as session:
        close_open_nights(session, date)
        start = create_cycle(session, settings, date)
    with session_scope(settings) as session:
        todo = session.execute(
            select(Chunk)
            .where(Chunk.cycle_id == start.cycle_id, Chunk.status != ChunkStatus.stored)
            .order_by(Chunk.id)
        ).scalars().all()  # fmt: skip
        specs = [
            ChunkSpec(c.id, c.cycle_id, c.platform.value, c.first_id, c.last_id) for c in todo
        ]
    total = start.chunks
    if specs:
        asyncio.run(_fetch_all(settings, specs, transport, progress, total, total - len(specs)))
    advance(settings, after_diffs=after_diffs)
    return summarise(settings, start.cycle_id)


def advance(settings: Settings, *, after_diffs: Callable[[int], None] | None = None) -> None:
    """Run the recorded stages of every night past fetching, earliest night first."""
    stages = [CycleStatus.diffing, CycleStatus.growing, CycleStatus.materialising,
              CycleStatus.exporting]  # fmt: skip
    while True:
        with session_scope(settings) as session:
            cycle = session.execute(
                select(Cycle).where(Cycle.status.in_(stages)).order_by(Cycle.date).limit(1)
            ).scalar_one_or_none()
            if cycle is None:
                return
            cycle_id, status = cycle.id, cycle.status
        if status == CycleStatus.diffing:
            with session_scope(settings) as session:
                if compute_diffs(session, cycle_id) is None:
                    return  # an earlier night is still fetching
            if after_diffs:
                after_diffs(cycle_id)
        elif status == CycleStatus.growing:
            with session_scope(settings) as session:
                grow_ranges(session, settings, cycle_id)
        elif status == CycleStatus.materialising:
            materialise_cycle(settings, cycle_id)
        else:
            finish_cycle(settings, cycle_id)


def summarise(settings: Settings, cycle_id: int) -> CycleSummary:
    with session_scope(settings) as session:
        c = session.get(Cycle, cycle_id)
        assert c is not None
        return CycleSummary(
            cycle_id=c.id,
            date=c.date,
            status=c.status.value,
            chunks=c.chunks_total,
            accounts=c.accounts,
            changed=c.changed_players,
            new_players=c.new_players,
            growth=list((c.notes or {}).get("growth", [])),
        )
