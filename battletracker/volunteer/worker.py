"""The Celery options of a node's worker: it declares nothing and listens to nobody.

A node's broker user may only consume ``fetch`` and publish to the results exchange
(see nodes/broker.py), so its worker must not declare queues or exchanges, must not
run remote control (a pidbox queue, and broadcasts that would reach other workers),
and sends no task events. Results go to ``store`` through ``bt.results``, the one
exchange a node may write to.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

__all__ = ["RESULTS_EXCHANGE", "node_celery_options"]

RESULTS_EXCHANGE = "bt.results"


def node_celery_options() -> dict[str, Any]:
    """Options laid over the pipeline's when the worker runs as a node."""
    work = Exchange("battletracker", type="direct", durable=True, no_declare=True)
    results = Exchange(RESULTS_EXCHANGE, type="direct", durable=True, no_declare=True)
    return {
        "task_queues": [
            Queue("fetch", work, routing_key="fetch", durable=True, no_declare=True),
            Queue("store", results, routing_key="store", durable=True, no_declare=True),
        ],
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_disable_rate_limits": True,
    }
