"""Every board of a cycle's date in one task, outside the nightly chain.

``battletracker.materialise_boards`` builds every board of a date in one task (one
window after another), for an operator rebuilding boards by hand at a small size. The
nightly chain builds them as recorded pieces, one task each, in parallel: the
``materialising`` stage (:mod:`battletracker.pipeline.boards`). Routed to the server's
``control`` queue by the ``battletracker.*`` route.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ..app import PipelineTask, app, current_settings
from ..db import engine_for
from .materialise import materialise

__all__ = ["materialise_boards"]

log = logging.getLogger(__name__)


@app.task(
    name="battletracker.materialise_boards",
    base=PipelineTask,
    # A restart of PostgreSQL, or the swap's lock_timeout when a reader sits in an open
    # transaction: retry later; the build is one transaction per window, so a retry
    # starts that window afresh and never sees a half-built board.
    autoretry_for=(OperationalError,),
    retry_backoff=30,
    max_retries=10,
)
def materialise_boards(cycle_id: int) -> dict[str, Any]:
    """Materialise every board x window x platform and the daily activity for the date of
    cycle ``cycle_id``.

    Idempotent (``acks_late`` may run it twice): a re-run rebuilds the same boards from
    the same rows, and a re-run of an older cycle after a newer one is a no-op for the
    boards (their ``as_of`` is newer) -- see :mod:`battletracker.stats.materialise`.
    """
    engine = engine_for(current_settings())
    with engine.connect() as conn:
        day = conn.execute(
            text("SELECT date FROM cycles WHERE id = :id"), {"id": cycle_id}
        ).scalar()
    if day is None:
        log.warning("materialise_boards: no cycle %s; nothing to do", cycle_id)
        return {"cycle_id": cycle_id, "boards": 0}
    results = materialise(engine, day)
    built = [r for r in results if not r.skipped]
    log.info(
        "cycle %s (%s): %d boards built, %d skipped as older than the live boards",
        cycle_id, day, len(built), len(results) - len(built),
    )
    return {"cycle_id": cycle_id, "date": day.isoformat(), "boards": len(built),
            "seconds": round(sum(r.seconds for r in built), 3)}
