"""A cycle's stages after fetching, as recorded states: which task runs each, failing, retrying.

::

    fetching ─► diffing ─► growing ─► materialising ─► exporting ─► done
                  │           │             │               │
                  └───────────┴─────────────┴───────────────┴──► failed (stage + error)

Each stage's task checks the cycle's status under a row lock and moves it on, so the
reaper can re-send any stage stuck past ``stale_after_seconds`` (a running stage holds
its row and is skipped). A stage that fails for a reason retrying cannot fix (or keeps
failing past its retries) is marked ``failed`` with the stage and the error on the
cycle; ``battletracker cycle retry`` puts it back in that stage (for the boards, only
its unfinished pieces are built again: see :mod:`.boards`).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..models import BoardBuild, Chunk, ChunkStatus, Cycle, CycleStatus, PieceState
from .coordinator import CycleRefused, Publish, dispatch_chunks

__all__ = [
    "STAGE_TASKS",
    "RetryKind",
    "RetryOutcome",
    "fail_stage",
    "find_cycle",
    "retry_cycle",
]

log = logging.getLogger(__name__)

#: The task that runs each recorded stage (sent by name: no import cycle with tasks).
STAGE_TASKS: dict[CycleStatus, str] = {
    CycleStatus.diffing: "battletracker.compute_diffs",
    CycleStatus.growing: "battletracker.grow_ranges",
    CycleStatus.materialising: "battletracker.materialise_cycle",
    CycleStatus.exporting: "battletracker.export_to_elastic",
}


def fail_stage(session: Session, cycle_id: int, stage: CycleStatus, error: str) -> bool:
    """Mark the cycle ``failed`` in ``stage`` with ``error``; False if it left that stage."""
    done = session.execute(
        update(Cycle)
        .where(Cycle.id == cycle_id, Cycle.status == stage)
        .values(
            status=CycleStatus.failed,
            failed_stage=stage.value,
            error=error[:2000],
            status_changed_at=func.now(),
        )
    ).rowcount  # type: ignore[attr-defined]
    if done:
        log.error("cycle %s failed in %s: %s", cycle_id, stage.value, error)
    return bool(done)


def find_cycle(session: Session, day: dt.date | None) -> Cycle | None:
    """The cycle of ``day``, or the latest one."""
    query = select(Cycle)
    query = query.where(Cycle.date == day) if day else query.order_by(Cycle.date.desc())
    return session.execute(query.limit(1).with_for_update()).scalar_one_or_none()


class RetryKind(enum.StrEnum):
    chunks = "chunks"
    stage = "stage"


@dataclass(frozen=True)
class RetryOutcome:
    kind: RetryKind
    cycle_id: int
    chunks: int = 0
    stage: CycleStatus | None = None


def retry_cycle(session: Session, cycle: Cycle, publish: Publish) -> RetryOutcome:
    """Hand out a fetching night's failed chunks again, or resume a failed stage.

    A night that left ``fetching`` is refused (:class:`CycleRefused`): its numbers were
    diffed (or are being diffed) from what it had, and data read now is a later day's.
    """
    if cycle.status == CycleStatus.failed and cycle.failed_stage:
        stage = CycleStatus(cycle.failed_stage)
        if stage == CycleStatus.materialising:  # resume the unfinished pieces only
            session.execute(
                update(BoardBuild)
                .where(BoardBuild.cycle_id == cycle.id, BoardBuild.state == PieceState.failed)
                .values(state=PieceState.pending, attempts=0, error=None, sent_at=None)
            )
        cycle.status = stage
        cycle.error = None
        cycle.failed_stage = None
        cycle.status_changed_at = func.now()
        return RetryOutcome(RetryKind.stage, cycle.id, stage=stage)
    if cycle.status != CycleStatus.fetching:
        partial = (cycle.notes or {}).get("partial")
        why = (
            f"it was closed as partial when the night of {partial['closed_for']} was due "
            f"({partial['missed_chunks']} chunks missed)"
            if cycle.partial and partial
            else f"it is {cycle.status.value}"
        )
        raise CycleRefused(
            f"the night of {cycle.date} cannot be retried: {why}. What the API says now "
            "is a later day's data; the accounts it missed are counted by the next night "
            "that reads them."
        )
    # Attempts only ever grow (a dispatch token names its attempt, and one from before
    # the retry must stay stale); the retry gives every chunk of the night another
    # ``max_attempts`` instead (the reaper reads ``notes["retries"]``).
    cycle.notes = {**(cycle.notes or {}), "retries": int((cycle.notes or {}).get("retries", 0)) + 1}
    failed: Sequence = [Chunk.cycle_id == cycle.id, Chunk.status == ChunkStatus.failed]
    n = dispatch_chunks(session, publish, where=failed)
    return RetryOutcome(RetryKind.chunks, cycle.id, chunks=n)
