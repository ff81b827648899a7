"""The live id ranges of both platforms: read them, or set one by hand with its history kept.

Growth is automatic (``pipeline/ranges.py``); an operator sets a range when the API's id
space moved in a way growth does not follow (a new block of ids, a range that was set too
wide). The change applies from the next cycle on: a running cycle keeps its chunks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..constants import PS_THRESHOLD, Platform
from ..models import PlatformRange
from ..pipeline.coordinator import ensure_platform_ranges
from ..settings import Settings

__all__ = ["RangeError", "RangeRow", "set_range", "show_ranges"]


class RangeError(ValueError):
    """The range asked for cannot be a platform's range; the message says why."""


@dataclass(frozen=True)
class RangeRow:
    platform: str
    min_id: int
    max_id: int
    updated_at: dt.datetime | None
    #: The latest change (growth or by hand), or None.
    last_change: dict[str, Any] | None
    changes: int

    def as_json(self) -> dict[str, Any]:
        return {"platform": self.platform, "min_id": self.min_id, "max_id": self.max_id,
                "ids": self.max_id - self.min_id + 1,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None,
                "last_change": self.last_change, "changes": self.changes}


def show_ranges(session: Session, settings: Settings) -> list[RangeRow]:
    """Both platforms' live ranges (seeded from the settings if no cycle ran yet)."""
    ensure_platform_ranges(session, settings)
    rows = session.execute(select(PlatformRange).order_by(PlatformRange.min_id)).scalars()
    return [RangeRow(r.platform.value, r.min_id, r.max_id, r.updated_at,
                     r.history[-1] if r.history else None, len(r.history or [])) for r in rows]


def set_range(session: Session, settings: Settings, platform: str, min_id: int,
              max_id: int, *, today: dt.date | None = None) -> RangeRow:
    """Set ``platform``'s range; the old one goes into its history with ``"by": "operator"``."""
    try:
        plat = Platform(platform)
    except ValueError:
        raise RangeError(f"platform must be xbox or ps, not {platform!r}") from None
    if not 0 < min_id <= max_id:
        raise RangeError(f"{min_id}-{max_id}: need 0 < min <= max")
    if plat is Platform.xbox and max_id >= PS_THRESHOLD:
        raise RangeError(f"xbox ids stay below {PS_THRESHOLD} (higher ids are PlayStation's)")
    if plat is Platform.ps and min_id < PS_THRESHOLD:
        raise RangeError(f"ps ids start at {PS_THRESHOLD} (lower ids are Xbox's)")
    ensure_platform_ranges(session, settings)
    row = session.execute(
        select(PlatformRange).where(PlatformRange.platform == plat).with_for_update()
    ).scalar_one()
    change = {"date": (today or dt.date.today()).isoformat(), "by": "operator",
              "from": row.max_id, "to": max_id, "min_from": row.min_id, "min_to": min_id}
    row.min_id, row.max_id = min_id, max_id
    row.history = [*(row.history or []), change]
    row.updated_at = func.now()
    session.flush()
    session.refresh(row)
    return RangeRow(plat.value, min_id, max_id, row.updated_at, change, len(row.history))
