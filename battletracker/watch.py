"""Wait for a cycle to finish behind a progress bar (``cycle start --wait``, the demo)."""

from __future__ import annotations

import datetime as dt
import time

import click

from .db import session_scope
from .pipeline.status import cycle_progress
from .settings import Settings

__all__ = ["wait_for_cycle"]


def wait_for_cycle(
    settings: Settings, day: dt.date, *, timeout: float = 0, label: str = "", poll: float = 0.2
) -> None:
    """Show stored/total chunks until the cycle of ``day`` is done.

    The cycle may not exist yet (its start was sent to a worker): the bar waits for it.
    ``timeout`` 0 waits for ever; otherwise a :class:`click.ClickException` says how far
    the cycle got.
    """
    deadline = time.monotonic() + timeout if timeout else None
    status = "not started"
    with click.progressbar(length=1, label=label or f"cycle {day}", show_pos=True) as bar:
        while True:
            with session_scope(settings) as session:
                p = cycle_progress(session, date=day)
            if p is not None:
                status = p.status
                bar.length = max(p.chunks_total, 1)
                bar.update(p.chunks_stored - bar.pos)
                if p.status == "done":
                    return
            if deadline and time.monotonic() > deadline:
                raise click.ClickException(f"cycle {day} not done after {timeout} s: {status}")
            time.sleep(poll)
