"""The one task a volunteer's fetch worker runs: ``battletracker.fetch_range``.

It lives apart from the server's tasks (:mod:`battletracker.pipeline.tasks`) so that a
node imports the API client, the rate limiter and the message contract, and nothing of
the database layer. What it tells the server goes by task *name*
(``app.send_task``), never by importing a server task.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from celery.exceptions import Ignore, Reject

from ..app import PipelineTask, app, current_settings
from ..release import installed_version, needs_newer
from ..volunteer.lease import LeaseKeeper, keeper_for
from ..volunteer.stopper import request_stop
from ..wargaming.errors import KeyUnusable, MethodDisabled, RequestBug, WargamingError
from . import metrics
from .keys import fetch_on_node, follow_shares
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
    wanted = needs_newer(chunk)  # issue 14: too old for this chunk: hand it back, upgrade
    if wanted is not None:
        log.warning("chunk needs battletracker %s, this node runs %s: handed back, "
                    "worker stops", wanted, installed_version())  # fmt: skip
        _stop_this_worker()
        raise Reject(f"needs battletracker {wanted}", requeue=True)
    spec = ChunkSpec.from_message(chunk)
    settings = current_settings()
    node = self.request.hostname or ""
    # issue 12: a node fetches with its lease's keys (and its own) and signs the result
    keeper = keeper_for(settings.node_dir)
    if keeper is not None:
        keeper.follow(follow_shares)  # renewals reach the chunks already running
        # with no key of its own, wait up to one renewal for a share of the pool
        wait = 0.0 if settings.wg_keys else keeper.renew_in + 1
        leased = keeper.usable_keys(wait=wait)
        if not leased and not settings.wg_keys:  # no share yet (or all keys disabled)
            _back_off(1.0)
        settings = settings.replace(wg_keys=settings.wg_keys + leased)
    # issue 13: the server's staleness clock: this chunk is being fetched now
    _notify(spec, chunk, keeper, node, progress=True)
    try:
        # issue 16: the process's lasting request stream per key (several chunks at once)
        result = fetch_on_node(spec, settings, node).to_message()
    except KeyUnusable as exc:
        _stop_fetching(self, exc, keeper)
        raise Reject(str(exc), requeue=True) from exc
    except MethodDisabled as exc:
        # issue 13: the server holds the chunk and publishes it again later; this message
        # is done (a 30-minute delayed retry here would sit unacked near RabbitMQ's
        # consumer timeout, and a node may not re-publish)
        _notify(spec, chunk, keeper, node, held=str(exc))
        raise Ignore() from exc
    except RequestBug as exc:
        log.error("chunk %s: request bug, not retried: %s", spec.chunk_id, exc)
        if keeper is None:
            _chunk_failed(spec, str(exc), retryable=False)
        raise
    except WargamingError as exc:  # transient and limit errors past the in-task retries
        if keeper is not None:
            _back_off(min(300.0, 30 * 2.0 ** min(self.request.retries, 4)))
        if self.request.retries >= (self.max_retries or 0):
            _chunk_failed(spec, str(exc), retryable=True)
            raise
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc
    metrics.record_fetch(result)
    return keeper.sign(result, chunk) if keeper is not None else result


def _notify(spec: ChunkSpec, chunk: dict[str, Any], keeper: LeaseKeeper | None, node: str,
            **notice: Any) -> None:  # fmt: skip
    """Tell the server about the chunk on the one way a node may: the results' queue,
    signed like a result (``pipeline.store`` applies it to the dispatched chunk)."""
    message = {"v": 1, **spec.to_message(), "node": node, **notice}
    if keeper is not None:
        message = keeper.sign(message, chunk)
    try:
        app.send_task("battletracker.store_results", args=(message,))
    except Exception as exc:  # a notice is best effort: the fetch goes on without it
        log.warning("chunk %s: notice not sent: %s", spec.chunk_id, exc)


def _stop_this_worker() -> None:
    """Stop this worker (not by broadcast): ``node run`` then checks versions and upgrades."""
    from billiard.process import current_process
    from celery.worker import state

    if current_process().name != "MainProcess":  # prefork: the worker is our parent
        os.kill(os.getppid(), signal.SIGTERM)
    else:  # threads or solo pool: the consumer loop checks this flag between messages
        state.should_stop = 0


def _back_off(seconds: float) -> None:
    """A node may not re-publish (its broker user writes only results): wait here, then
    hand the message back to the queue."""
    time.sleep(seconds)
    raise Reject("handed back after a back-off", requeue=True)


def _chunk_failed(spec: ChunkSpec, error: str, *, retryable: bool) -> None:
    app.send_task(
        "battletracker.chunk_failed",
        args=(spec.to_message(), error),
        kwargs={"retryable": retryable},
    )


def _stop_fetching(task: PipelineTask, exc: KeyUnusable, keeper: LeaseKeeper | None) -> None:
    """No usable key left: stop consuming ``fetch`` here and tell the server."""
    hostname = task.request.hostname
    log.critical("node %s has no usable API key (%s): it stops fetching", hostname, exc)
    if keeper is not None:  # issue 12: a node reports over HTTP and stops locally
        keeper.report_key(exc.app_id, exc.api_message or str(exc))
        request_stop(current_settings().node_dir, f"no usable API key: {exc}")
        return
    app.send_task(
        "battletracker.key_unusable",
        args=(hostname or "", exc.app_id[:4] + "…", exc.api_message or str(exc)),
    )
    if hostname:
        app.control.cancel_consumer("fetch", destination=[hostname])
