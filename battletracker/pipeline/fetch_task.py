"""The one task a volunteer's fetch worker runs: ``battletracker.fetch_range``.

It lives apart from the server's tasks (:mod:`battletracker.pipeline.tasks`) so that a
node imports the API client, the rate limiter and the message contract, and nothing of
the database layer. What it tells the server goes by task *name*
(``app.send_task``), never by importing a server task.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from celery.exceptions import Ignore, Reject

from ..app import PipelineTask, app, current_settings
from ..settings import Settings
from ..wargaming.errors import KeyUnusable, MethodDisabled, RequestBug, WargamingError
from . import metrics
from .fetch import fetch_chunk
from .keys import mark_dead, slots_for
from .result import ChunkSpec

__all__ = ["fetch_range"]

log = logging.getLogger(__name__)


@app.task(
    name="battletracker.fetch_range",
    base=PipelineTask,
    bind=True,
    max_retries=5,
    # one chunk takes chunk_size/100/rps seconds: 10,000 ids at 10 rps is ~100 s
    time_limit=20 * 60,
    soft_time_limit=15 * 60,
)
def fetch_range(self: PipelineTask, chunk: dict[str, Any]) -> dict[str, Any]:
    """Fetch a chunk with this node's keys; the result goes on to ``store_results``."""
    spec = ChunkSpec.from_message(chunk)
    settings = current_settings()
    node = self.request.hostname or ""
    # the server's staleness clock: this chunk is being fetched (see pipeline.reaper)
    app.send_task("battletracker.chunk_progress", args=(spec.chunk_id,))
    try:
        result = asyncio.run(_fetch(spec, settings, node))
    except KeyUnusable as exc:
        _stop_fetching(self, exc)
        raise Reject(str(exc), requeue=True) from exc
    except MethodDisabled as exc:
        # the server holds the chunk and publishes it again later; this message is done
        # (a 30-minute delayed retry here would sit unacked near RabbitMQ's timeout)
        app.send_task("battletracker.chunk_held", args=(spec.to_message(), str(exc)))
        raise Ignore() from exc
    except RequestBug as exc:
        log.error("chunk %s: request bug, not retried: %s", spec.chunk_id, exc)
        _chunk_failed(spec, str(exc), retryable=False)
        raise
    except WargamingError as exc:  # transient and limit errors past the in-task retries
        if self.request.retries >= (self.max_retries or 0):
            _chunk_failed(spec, str(exc), retryable=True)
            raise
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc
    metrics.record_fetch(result)
    return result


async def _fetch(spec: ChunkSpec, settings: Settings, node: str) -> dict[str, Any]:
    slots = slots_for(settings)
    try:
        result = await fetch_chunk(spec, slots, node=node)
    finally:
        for slot in slots:
            if slot.dead:
                mark_dead(slot.app_id)
            await slot.client.aclose()
    return result.to_message()


def _chunk_failed(spec: ChunkSpec, error: str, *, retryable: bool) -> None:
    app.send_task(
        "battletracker.chunk_failed",
        args=(spec.to_message(), error),
        kwargs={"retryable": retryable},
    )


def _stop_fetching(task: PipelineTask, exc: KeyUnusable) -> None:
    """No usable key left: stop consuming ``fetch`` here and tell the server."""
    hostname = task.request.hostname
    log.critical("node %s has no usable API key (%s): it stops fetching", hostname, exc)
    app.send_task(
        "battletracker.key_unusable",
        args=(hostname or "", exc.app_id[:4] + "…", exc.api_message or str(exc)),
    )
    if hostname:
        app.control.cancel_consumer("fetch", destination=[hostname])
