"""Grow the id ranges: new accounts are appended at the top of each platform's range.

If the highest account a cycle saw lies within ``growth_margin`` of a platform's upper
bound, the bound moves up by ``growth_step``; the change is appended to the platform's
``history`` and to the cycle's notes, where the operator sees it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Cycle, CycleStatus, PlatformRange
from ..settings import Settings

__all__ = ["Growth", "decide_growth", "grow_ranges"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Growth:
    platform: str
    old_max: int
    new_max: int
    highest: int


def decide_growth(
    platform: str, max_id: int, highest: int | None, *, margin: int, step: int
) -> Growth | None:
    """Pure rule: grow by ``step`` when ``highest`` is within ``margin`` of ``max_id``."""
    if highest is None or highest < max_id - margin:
        return None
    return Growth(platform, max_id, max_id + step, highest)


def grow_ranges(session: Session, settings: Settings, cycle_id: int) -> list[Growth] | None:
    """Apply :func:`decide_growth` per platform; ``None`` if the cycle is not in ``growing``."""
    cycle = session.execute(
        select(Cycle).where(Cycle.id == cycle_id).with_for_update()
    ).scalar_one_or_none()
    if cycle is None or cycle.status != CycleStatus.growing:
        return None
    highest = (cycle.notes or {}).get("highest", {})
    grown = []
    for r in session.execute(select(PlatformRange).with_for_update()).scalars():
        g = decide_growth(
            r.platform.value,
            r.max_id,
            highest.get(r.platform.value),
            margin=settings.growth_margin,
            step=settings.growth_step,
        )
        if g is None:
            continue
        r.max_id = g.new_max
        r.history = [
            *(r.history or []),
            {"date": cycle.date.isoformat(), "cycle_id": cycle_id, "from": g.old_max,
             "to": g.new_max, "highest": g.highest},
        ]  # fmt: skip
        r.updated_at = func.now()
        grown.append(g)
        log.warning(
            "range of %s grew %d -> %d (highest account %d within %d of the bound)",
            g.platform, g.old_max, g.new_max, g.highest, settings.growth_margin,
        )  # fmt: skip
    cycle.notes = {**(cycle.notes or {}), "growth": [asdict(g) for g in grown]}
    cycle.status = CycleStatus.materialising
    cycle.status_changed_at = func.now()
    return grown
