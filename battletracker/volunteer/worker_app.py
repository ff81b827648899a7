"""The Celery app ``node run`` starts (``celery -A battletracker.volunteer.worker_app``).

It is the node's fetch app plus two things ``node run`` relies on: each fetched chunk is
counted in the node's ledger, and a cold shutdown gives the running chunk a few seconds
before it is handed back to the broker (``worker_soft_shutdown_timeout``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from celery.signals import task_failure, task_success, worker_init

from ..fetcher import app
from .ledger import record_chunk, record_error

__all__ = ["LEDGER_DIR_ENV", "SOFT_SHUTDOWN_SECONDS", "app"]

log = logging.getLogger(__name__)

#: How long a stopping worker lets its chunk finish before handing it back unfinished.
SOFT_SHUTDOWN_SECONDS = 10.0
#: Environment variable naming the directory of the node's ledger (set by ``node run``;
#: not a ``BATTLETRACKER_*`` setting: a worker started by hand keeps no ledger).
LEDGER_DIR_ENV = "BTNODE_LEDGER_DIR"
FETCH_TASK = "battletracker.fetch_range"


def _node_dir() -> Path | None:
    value = os.environ.get(LEDGER_DIR_ENV)
    return Path(value) if value else None


@worker_init.connect
def _soft_shutdown(sender: Any = None, **_: Any) -> None:
    app.conf.worker_soft_shutdown_timeout = SOFT_SHUTDOWN_SECONDS


@task_success.connect
def _count_chunk(sender: Any = None, result: Any = None, **_: Any) -> None:
    directory = _node_dir()
    if directory is None or getattr(sender, "name", None) != FETCH_TASK:
        return
    if not isinstance(result, dict):
        return
    try:
        ids = int(result["last_id"]) - int(result["first_id"]) + 1
        record_chunk(directory, accounts=len(result.get("rows") or ()), ids=ids)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        log.warning("could not count the chunk in the node's ledger: %s", exc)


@task_failure.connect
def _note_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    directory = _node_dir()
    if directory is None or getattr(sender, "name", None) != FETCH_TASK:
        return
    with contextlib.suppress(OSError):
        record_error(directory, f"{type(exception).__name__}: {exception}")
