"""The last stage of a cycle: export to Elasticsearch when configured, then mark it done."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from ..db import session_scope
from ..models import Cycle, CycleStatus
from ..settings import Settings

__all__ = ["finish_cycle"]

log = logging.getLogger(__name__)


def finish_cycle(settings: Settings, cycle_id: int) -> bool:
    """Export and close the cycle if it is in ``exporting``; False if there was nothing to do.

    The export overwrites documents by account id, so running it twice is harmless; the
    status flips only after it succeeded.
    """
    with session_scope(settings) as session:
        cycle = session.get(Cycle, cycle_id)
        if cycle is None or cycle.status != CycleStatus.exporting:
            return False
    from .export import export_cycle

    report = export_cycle(settings, cycle_id)
    if report.skipped:
        log.info("export skipped: %s", report.skipped)
    report.raise_for_errors()  # documents refused: keep the cycle in exporting, retry
    with session_scope(settings) as session:
        cycle = session.execute(
            select(Cycle).where(Cycle.id == cycle_id).with_for_update()
        ).scalar_one()
        if cycle.status != CycleStatus.exporting:
            return False
        cycle.notes = {**(cycle.notes or {}), "export": report.as_dict()}
        cycle.status = CycleStatus.done
        cycle.finished_at = func.now()
        cycle.status_changed_at = func.now()
    return True
