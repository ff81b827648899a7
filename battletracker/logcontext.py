"""Log context of the running task (task, cycle, chunk), stamped on every log line it makes.

A context variable set by the pipeline's base task for the length of one run, and a log
record factory that prefixes each message with it, so a worker's log says which cycle
and chunk a line is about without every call site repeating it.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["bind", "current", "install"]

_CONTEXT: contextvars.ContextVar[str] = contextvars.ContextVar("battletracker_log", default="")
_installed = False


def current() -> str:
    """The context of the running task (``"compute_diffs cycle=3"``), or ``""``."""
    return _CONTEXT.get()


@contextmanager
def bind(task: str, **fields: Any) -> Iterator[None]:
    """Stamp ``task`` and the non-empty ``fields`` on log lines made inside."""
    parts = [task, *(f"{k}={v}" for k, v in fields.items() if v is not None)]
    token = _CONTEXT.set(" ".join(parts))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def install() -> None:
    """Wrap the log record factory once per process (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        context = _CONTEXT.get()
        record.bt_context = context
        if context and isinstance(record.msg, str):
            record.msg = f"[{context}] {record.msg}"
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
