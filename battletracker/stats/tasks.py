"""The stats step of the nightly chain, whole or spread over tasks.

``battletracker.materialise_boards`` builds every board of a cycle's date in one task
(one window after another). ``battletracker.rebuild_boards`` does the same work as
separate tasks that run in parallel on the server worker's processes: one
``battletracker.build_window`` per window (its per-account sums, once), which then
sends one ``battletracker.build_board`` per board of that window, plus one
``battletracker.build_activity``. No chord: each task is idempotent and stands alone
(a board task refuses sums made for another date and retries until they are there).
All are routed to the server's ``control`` queue by the ``battletracker.*`` route.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ..app import PipelineTask, app, current_settings
from ..db import engine_for
from .activity import materialise_activity
from .interfaces import WINDOWS
from .materialise import (
    DEFAULT_WORK_MEM,
    StaleSums,
    build_window_sums,
    materialise,
    materialise_board,
)
from .registry import default_registry

__all__ = ["build_activity", "build_board", "build_window", "materialise_boards",
           "rebuild_boards"]  # fmt: skip

#: One board x window at 17 M accounts is a sort of at most 17 M rows: minutes, not an
#: hour. The limit stays well inside RabbitMQ's 30-minute consumer timeout.
BOARD_TIME_LIMIT = 20 * 60
_RETRY = {"autoretry_for": (OperationalError, StaleSums), "retry_backoff": 15,
          "max_retries": 12}  # fmt: skip

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


def _cycle_date(cycle_id: int) -> dt.date | None:
    engine = engine_for(current_settings())
    with engine.connect() as conn:
        day: dt.date | None = conn.execute(
            text("SELECT date FROM cycles WHERE id = :id"), {"id": cycle_id}
        ).scalar()
    return day


@app.task(name="battletracker.rebuild_boards", base=PipelineTask, **_RETRY)
def rebuild_boards(cycle_id: int) -> dict[str, Any]:
    """Send one task per window (each then one per board) and one for the activity."""
    day = _cycle_date(cycle_id)
    if day is None:
        log.warning("rebuild_boards: no cycle %s; nothing to do", cycle_id)
        return {"cycle_id": cycle_id, "windows": 0}
    for window in WINDOWS:
        build_window.delay(day.isoformat(), window)
    build_activity.delay(day.isoformat())
    return {"cycle_id": cycle_id, "date": day.isoformat(), "windows": len(WINDOWS)}


@app.task(name="battletracker.build_window", base=PipelineTask, time_limit=BOARD_TIME_LIMIT,
          soft_time_limit=BOARD_TIME_LIMIT - 60, **_RETRY)  # fmt: skip
def build_window(date: str, window: str) -> int:
    """The window's sums (once), then one ``build_board`` per registered board."""
    day = dt.date.fromisoformat(date)
    with engine_for(current_settings()).connect() as conn:
        build_window_sums(conn, window, day, work_mem=DEFAULT_WORK_MEM)
    boards = list(default_registry().scorers())
    for board in boards:
        build_board.delay(date, window, board)
    return len(boards)


@app.task(name="battletracker.build_board", base=PipelineTask, time_limit=BOARD_TIME_LIMIT,
          soft_time_limit=BOARD_TIME_LIMIT - 60, **_RETRY)  # fmt: skip
def build_board(date: str, window: str, board: str) -> dict[str, Any]:
    """Build and swap in one board over one window (see ``materialise_board``)."""
    scorer = default_registry().scorer(board)
    with engine_for(current_settings()).connect() as conn:
        result = materialise_board(conn, dt.date.fromisoformat(date), window, scorer)
    return {"board": board, "window": window, "total": result.total,
            "seconds": round(result.seconds, 3), "skipped": result.skipped}  # fmt: skip


@app.task(name="battletracker.build_activity", base=PipelineTask, **_RETRY)
def build_activity(date: str) -> None:
    """The day's activity figures (independent of the boards)."""
    with engine_for(current_settings()).begin() as conn:
        conn.execute(text("SELECT set_config('work_mem', :m, true)"), {"m": DEFAULT_WORK_MEM})
        materialise_activity(conn, dt.date.fromisoformat(date))
