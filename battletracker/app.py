"""The Celery app: queues, routes, task defaults and the beat schedule.

Configuration is lazy: ``import battletracker`` reads nothing. The first use of
``app.conf`` pulls the defaults below from :func:`battletracker.settings.load_settings`
(``battletracker.toml`` + ``BATTLETRACKER_*``), and an importable ``celeryconfig``
module, if there is one, overrides them. :func:`configure` pins explicit settings instead
(the demo and the tests do that).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from kombu import Exchange, Queue

from .nodes.guard import StoreGuard
from .settings import Settings, load_settings
from .volunteer.stopper import LocalStop

__all__ = [
    "FETCH_TASKS",
    "MAX_TIME_LIMIT",
    "QUEUES",
    "SERVER_TASKS",
    "PipelineTask",
    "app",
    "celery_options",
    "configure",
    "current_settings",
]

log = logging.getLogger(__name__)

#: Limits never grow past this: RabbitMQ closes a consumer whose unacked message is older
#: than 30 minutes (``consumer_timeout``), and a late-acked task must finish before that.
MAX_TIME_LIMIT = 28 * 60

#: fetch: volunteers; store: the server's bulk writer; control: coordination and stages.
QUEUES = ("fetch", "store", "control")

ROUTES = {
    "battletracker.fetch_range": {"queue": "fetch"},
    # named exchange and key: a bare queue would be sent through the default exchange,
    # which a node may not write to (nodes/broker.py)
    "battletracker.store_results": {"queue": "store", "exchange": "bt.results",
                                    "routing_key": "store"},
    "battletracker.*": {"queue": "control"},
}


def celery_options(settings: Settings) -> dict[str, Any]:
    """The Celery settings the pipeline's guarantees rest on, plus the beat table."""
    hour, minute = (int(x) for x in settings.cycle_time.split(":"))
    exchange = Exchange("battletracker", type="direct", durable=True)
    # nodes may publish only to ``bt.results``, bound to ``store`` alone (nodes/broker.py)
    results = Exchange("bt.results", type="direct", durable=True)
    queues = [Queue(q, results if q == "store" else exchange, routing_key=q, durable=True)
              for q in QUEUES]  # fmt: skip
    options = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        # JSON only: results come from volunteers and are untrusted.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        # No result backend: stages hand data on through links and the database.
        "result_backend": None,
        "task_ignore_result": True,
        # A task is acked after it ran, and redelivered if its worker process dies:
        # every stage must therefore be idempotent (it may run twice).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # One process per worker unless told otherwise (-c N): a fetch worker paces its
        # keys inside one process; two processes would spend each key twice.
        "worker_concurrency": 1,
        "task_queues": queues,
        "task_default_queue": "control",
        "task_default_exchange": "battletracker",
        "task_default_routing_key": "control",
        "task_routes": ROUTES,
        "task_create_missing_queues": False,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "timezone": "UTC",
        "enable_utc": True,
        "task_annotations": _stage_limits(settings),
        "beat_schedule": {
            "nightly-cycle": {
                "task": "battletracker.start_cycle",
                "schedule": crontab(hour=hour, minute=minute),
            },
            # the night beat missed (it was down at cycle_time) is started once it is back
            "start-missed-night": {
                "task": "battletracker.start_due_cycle",
                "schedule": timedelta(minutes=1),
                "options": {"expires": 55},
            },
            # the retention rule (pipeline/retention.py), half a day away from the night
            "compact-snapshots": {
                "task": "battletracker.compact_snapshots",
                "schedule": crontab(hour=(hour + 12) % 24, minute=minute),
            },
            "reap-stale-chunks": {
                "task": "battletracker.reap_stale",
                "schedule": timedelta(minutes=1),
                # a reaper run that waited longer than its period is already stale
                "options": {"expires": 55},
            },
        },
    }
    if settings.node_dir:  # a volunteer's worker: declares nothing, no remote control
        from .volunteer.worker import node_celery_options

        options.update(node_celery_options())
    return options


#: The tasks of a cycle's stages after fetching (their time limits come from settings).
STAGE_TASK_NAMES = ("battletracker.compute_diffs", "battletracker.grow_ranges",
                    "battletracker.materialise_cycle", "battletracker.build_board_piece",
                    "battletracker.export_to_elastic")


def _stage_limits(settings: Settings) -> dict[str, dict[str, int]]:
    soft = settings.stage_soft_time_limit
    limits = {"soft_time_limit": soft, "time_limit": min(soft + 5 * 60, MAX_TIME_LIMIT)}
    return {name: dict(limits) for name in STAGE_TASK_NAMES}


def _lazy_defaults() -> dict[str, Any]:
    return celery_options(current_settings())


#: What a volunteer's fetch worker loads (``celery -A battletracker.fetcher``): no database.
FETCH_TASKS = ("battletracker.pipeline.fetch_task",)
#: What the server's worker loads (``celery -A battletracker``): every task.
SERVER_TASKS = (*FETCH_TASKS, "battletracker.pipeline.tasks", "battletracker.stats.tasks")

app = Celery("battletracker", include=list(SERVER_TASKS))
app.add_defaults(_lazy_defaults)
app.steps["consumer"].add(StoreGuard)  # issue 12: the store consumer runs only store_results
app.steps["consumer"].add(LocalStop)  # issue 12: a node stops its fetch consumer locally
app.config_from_object("celeryconfig", silent=True)

_settings: Settings | None = None


def configure(settings: Settings) -> None:
    """Pin ``settings`` for this process and apply them to the Celery app."""
    global _settings
    _settings = settings
    app.conf.update(celery_options(settings))
    # connections opened under earlier settings would keep talking to the old broker
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None


def current_settings() -> Settings:
    """The pinned settings, or those of the environment (loaded once)."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


class PipelineTask(Task):
    """The base of every pipeline task: options, settings, session, log context, metrics.

    - options: ``acks_late`` + ``reject_on_worker_lost`` (a task may run twice, so every
      stage is idempotent), no result, time limits under RabbitMQ's consumer timeout;
    - :attr:`settings` (the process's settings) and :meth:`session` (one transaction);
    - log context: each line a run logs is prefixed with the task and the cycle or
      chunk it works on (:mod:`battletracker.logcontext`);
    - metrics: runs by outcome and seconds per task (:mod:`.pipeline.metrics`);
    - a soft time limit is not a failure to repeat forever: the task is sent again with
      both limits doubled (up to :data:`MAX_TIME_LIMIT`); past that it fails;
    - a stage task (:attr:`stage` set) that fails for good marks its cycle ``failed``
      with the stage and the error (:func:`.pipeline.stages.fail_stage`), which
      ``battletracker cycle status`` and ``/metrics`` show.

    Database modules are imported inside the methods that need them: a volunteer's
    fetch worker uses this base too and installs no database driver.
    """

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    time_limit = 25 * 60
    soft_time_limit = 20 * 60
    #: The cycle status this task runs (a ``CycleStatus`` value), for server stages.
    stage: str | None = None

    @property
    def settings(self) -> Settings:
        return current_settings()

    def session(self) -> Any:
        """``with self.session() as session``: one transaction, committed on success."""
        from .db import session_scope

        return session_scope(self.settings)

    def _context(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        first = args[0] if args else None
        if isinstance(first, dict):  # a chunk or a result message
            return {"cycle": first.get("cycle_id"), "chunk": first.get("chunk_id")}
        if self.stage and isinstance(first, int):
            return {"cycle": first}
        return {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from celery.exceptions import Retry, SoftTimeLimitExceeded

        from . import logcontext
        from .pipeline import metrics

        logcontext.install()
        name = (self.name or "").rsplit(".", 1)[-1]
        outcome = "ok"
        started = time.perf_counter()
        with logcontext.bind(name, **self._context(args, kwargs)):
            try:
                return super().__call__(*args, **kwargs)
            except SoftTimeLimitExceeded as exc:
                outcome = "soft_time_limit"
                self._after_soft_limit(exc)
                raise
            except Retry:
                outcome = "retry"
                raise
            except Exception:
                outcome = "error"
                raise
            finally:
                metrics.TASK_RUNS.labels(name, outcome).inc()
                metrics.TASK_SECONDS.labels(name).observe(time.perf_counter() - started)

    def _after_soft_limit(self, exc: BaseException) -> None:
        """Send the task again with doubled limits, unless they are at the ceiling."""
        request = self.request
        hard, soft = request.timelimit or (None, None)
        soft = soft or self.soft_time_limit or 0
        hard = hard or self.time_limit or 0
        if not soft or soft * 2 > MAX_TIME_LIMIT:
            log.error("%s: soft time limit of %s s hit again at the ceiling: failing", self.name,
                      soft)  # fmt: skip
            return
        log.warning("%s: soft time limit of %s s hit; sent again with %s s", self.name, soft,
                    soft * 2)  # fmt: skip
        raise self.retry(
            exc=exc, countdown=1, max_retries=None,
            soft_time_limit=soft * 2, time_limit=min(max(hard, soft) * 2, MAX_TIME_LIMIT),
        )  # fmt: skip

    def failure_error(self, exc: BaseException, args: Any) -> str | None:
        """The error a stage that failed for good records on its cycle (None: none)."""
        return f"{type(exc).__name__}: {exc}".strip()

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """A stage that failed for good marks its cycle ``failed`` with the error."""
        if not self.stage or not args or not isinstance(args[0], int):
            return
        from .models import CycleStatus
        from .pipeline import metrics
        from .pipeline.stages import fail_stage

        try:
            error = self.failure_error(exc, args)
            if error is None:
                return
            metrics.STAGE_FAILURES.labels(self.stage).inc()
            with self.session() as session:
                fail_stage(session, args[0], CycleStatus(self.stage), error)
        except Exception as db_exc:  # the database may be why it failed; the reaper retries
            log.error("cannot mark cycle %s failed in %s: %s", args[0], self.stage, db_exc)
