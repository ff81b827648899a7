"""Stop consuming ``fetch`` on this node, locally: a node has no remote control.

The task that finds no usable key runs in a pool process; the consumer lives in the
worker's main process. The task leaves a marker file in the node directory, and this
consumer bootstep (active only when the worker runs as a node) checks for it every
second and cancels the ``fetch`` consumer in its own process: no broadcast, which a
node's broker user could not send anyway. The worker stays up; removing the marker
and restarting the worker (``node run`` does) resumes fetching.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from celery import bootsteps
from celery.worker.consumer.tasks import Tasks

__all__ = ["STOP_FILE", "LocalStop", "request_stop"]

log = logging.getLogger(__name__)

STOP_FILE = "stop-fetching"


def request_stop(node_dir: str, reason: str) -> None:
    """Ask this node's worker to stop consuming ``fetch`` (from any of its processes)."""
    (Path(node_dir) / STOP_FILE).write_text(reason[:500] + "\n")


class LocalStop(bootsteps.StartStopStep):
    """Cancels the ``fetch`` consumer when the stop marker appears (node workers only)."""

    requires = (Tasks,)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self._timer: Any = None

    def start(self, c: Any) -> None:
        from ..app import current_settings

        node_dir = current_settings().node_dir
        if not node_dir:
            return
        marker = Path(node_dir) / STOP_FILE
        marker.unlink(missing_ok=True)  # a (re)started worker fetches again

        def check() -> None:
            consumer = c.task_consumer
            if marker.exists() and consumer is not None and consumer.consuming_from("fetch"):
                log.critical("stopping the fetch consumer: %s", marker.read_text().strip())
                c.cancel_task_queue("fetch")

        self._timer = c.timer.call_repeatedly(1.0, check)

    def stop(self, c: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
