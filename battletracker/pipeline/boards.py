"""The boards stage of a cycle: daily activity and every leaderboard, for the cycle's date.

A recorded stage like the others (``materialising``): the cycle row stays locked while
the boards are built, so the reaper (``SKIP LOCKED``) leaves a running build alone and
re-sends one that was lost; the status moves on to ``exporting`` only after every board
was swapped in. The build itself is :func:`battletracker.stats.materialise.materialise`
(one transaction per window, idempotent), on a connection of its own.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select

from ..db import engine_for, session_scope
from ..models import Cycle, CycleStatus
from ..settings import Settings

__all__ = ["materialise_cycle"]

log = logging.getLogger(__name__)


def materialise_cycle(settings: Settings, cycle_id: int) -> dict[str, Any] | None:
    """Build the boards of the cycle if it is in ``materialising``; None if it is not."""
    from ..stats.materialise import materialise

    with session_scope(settings) as session:
        cycle = session.execute(
            select(Cycle).where(Cycle.id == cycle_id).with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if cycle is None or cycle.status != CycleStatus.materialising:
            return None
        results = materialise(engine_for(settings), cycle.date)
        built = [r for r in results if not r.skipped]
        summary = {"boards": len(built), "skipped": len(results) - len(built),
                   "seconds": round(sum(r.seconds for r in built), 3)}  # fmt: skip
        cycle.notes = {**(cycle.notes or {}), "boards": summary}
        cycle.status = CycleStatus.exporting
        cycle.status_changed_at = func.now()
        log.info("cycle %s (%s): %d boards built", cycle_id, cycle.date, len(built))
    return summary
