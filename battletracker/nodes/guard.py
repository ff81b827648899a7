"""The store consumer's guard: what arrives from nodes runs ``store_results`` and nothing else.

Nodes can publish only to the ``bt.results`` exchange (nodes/broker.py), but what they
publish there is theirs to choose: any task name, Celery callbacks or a chain that the
server worker would send on with *its* credentials, an ``eta`` that parks the message in
memory, or a body of hundreds of megabytes. This consumer bootstep wraps every task
strategy of the server worker; for a message that came through ``bt.results`` it refuses,
before the body is decoded:

- a body over the size limit (``chunk_size`` times 600 bytes: a 10,000-id result is ~3.5 MB),
- any task but ``battletracker.store_results``,
- an ``eta``/``countdown``, ``expires`` or time limits in the headers,

and after decoding the (bounded) body: anything but one positional argument, keyword
arguments, callbacks, errbacks, a chain or a chord. Each refusal is rejected (not
requeued), logged, counted in the worker's metrics and written to ``result_rejections``.
Unknown task names were already refused by Celery itself.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.worker.consumer.tasks import Tasks

from . import metrics

__all__ = ["STORE_TASK", "StoreGuard", "check_message", "max_result_bytes"]

log = logging.getLogger(__name__)

STORE_TASK = "battletracker.store_results"
RESULTS_EXCHANGE = "bt.results"
#: Bytes of JSON per account id a result may take (the real figure is ~350).
BYTES_PER_ID = 600


def max_result_bytes(chunk_size: int) -> int:
    return chunk_size * BYTES_PER_ID


def _from_nodes(message: Any) -> bool:
    info = getattr(message, "delivery_info", None) or {}
    return info.get("exchange") == RESULTS_EXCHANGE or info.get("routing_key") == "store"


def check_message(
    message: Any, name: str, limit: int, own_limits: tuple[Any, Any] = (None, None)
) -> tuple[str, str] | None:
    """``(reason, detail)`` if the message must be refused, else None."""
    size = len(message.body or b"")
    if size > limit:
        return "oversized", f"{size} bytes > {limit}"
    if name != STORE_TASK:
        return "not_store_task", name[:100]
    headers = message.headers or {}
    if headers.get("eta") or headers.get("expires") or headers.get("countdown"):
        return "bad_envelope", "eta/expires/countdown"
    limits = tuple(headers.get("timelimit") or (None, None))
    if limits not in ((None, None), tuple(own_limits)):  # only the task's own limits
        return "bad_envelope", "time limits"
    try:
        body = message.decode()
    except Exception as exc:
        return "bad_envelope", f"undecodable: {type(exc).__name__}"
    if not isinstance(body, list | tuple) or len(body) != 3:
        return "bad_envelope", "not a protocol 2 body"
    args, kwargs, embed = body
    if not isinstance(args, list | tuple) or len(args) != 1 or kwargs:
        return "bad_envelope", "arguments"
    if not isinstance(embed, dict) or any(
        embed.get(k) for k in ("callbacks", "errbacks", "chain", "chord")
    ):
        return "bad_envelope", "callbacks, chain or chord"
    return None


def _record(reason: str, detail: str) -> None:
    """Write the rejection row on a connection of its own (the consumer holds no pool)."""
    metrics.REJECTED.labels(reason).inc()
    try:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session
        from sqlalchemy.pool import NullPool

        from ..app import current_settings
        from .models import ResultRejection

        engine = create_engine(current_settings().database_url, poolclass=NullPool)
        try:
            with Session(engine) as session, session.begin():
                session.add(ResultRejection(reason=reason, detail=detail[:500]))
        finally:
            engine.dispose()
    except Exception as exc:
        log.error("could not record a refused message (%s): %s", reason, exc)


def _guarded(name: str, strategy: Any, limit: int, errors: Any,
             own_limits: tuple[Any, Any]) -> Any:  # fmt: skip
    def guard(message: Any, *args: Any, **kwargs: Any) -> Any:
        if _from_nodes(message):
            refused = check_message(message, name, limit, own_limits)
            if refused is not None:
                reason, detail = refused
                log.warning("refused message from the results exchange: %s (%s)", reason, detail)
                message.reject_log_error(log, errors, requeue=False)
                _record(reason, detail)
                return None
        return strategy(message, *args, **kwargs)

    guard.__battletracker_guard__ = True  # type: ignore[attr-defined]
    return guard


def declare_topology(c: Any) -> None:
    """Declare every queue and its exchange binding: nodes may declare nothing, so the
    server's worker makes ``fetch`` (and ``bt.results`` → ``store``) before any node comes."""
    channel = c.connection.default_channel
    for queue in c.app.amqp.queues.values():
        queue.bind(channel).declare()


class StoreGuard(bootsteps.StartStopStep):
    """Wraps the task strategies after each (re)start of the task consumer."""

    requires = (Tasks,)

    def start(self, c: Any) -> None:
        from ..app import current_settings

        settings = current_settings()
        if not settings.node_dir:
            declare_topology(c)
        limit = max_result_bytes(settings.chunk_size)
        for name, strategy in list(c.strategies.items()):
            if not getattr(strategy, "__battletracker_guard__", False):
                task = c.app.tasks.get(STORE_TASK)
                own = (getattr(task, "time_limit", None), getattr(task, "soft_time_limit", None))
                c.strategies[name] = _guarded(name, strategy, limit, c.connection_errors, own)
