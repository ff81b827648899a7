"""The Celery app: queues, routes, task defaults and the beat schedule.

Configuration is lazy: ``import battletracker`` reads nothing. The first use of
``app.conf`` pulls the defaults below from :func:`battletracker.settings.load_settings`
(``battletracker.toml`` + ``BATTLETRACKER_*``), and an importable ``celeryconfig``
module, if there is one, overrides them. :func:`configure` pins explicit settings instead
(the demo and the tests do that).
"""

from __future__ import annotations

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
    "QUEUES",
    "SERVER_TASKS",
    "PipelineTask",
    "app",
    "celery_options",
    "configure",
    "current_settings",
]

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
        "beat_schedule": {
            "nightly-cycle": {
                "task": "battletracker.start_cycle",
                "schedule": crontab(hour=hour, minute=minute),
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
    """Shared options of every pipeline task; see :func:`celery_options` for why."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    #: RabbitMQ drops a consumer whose unacked message is older than 30 minutes.
    time_limit = 25 * 60
    soft_time_limit = 20 * 60

    @property
    def settings(self) -> Settings:
        return current_settings()
