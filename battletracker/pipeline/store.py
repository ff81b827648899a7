"""Store one fetch result: validate, COPY into staging, mark the chunk stored, count.

All of it happens in one transaction with the chunk row locked, so a result delivered
twice is stored once (the second finds the chunk ``stored`` and is ignored), and the
cycle's ``chunks_stored`` counter, bumped in the same transaction, tells exactly one
store that it completed the cycle: no chord, no result backend, nothing to lose on a
restart.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from ..db import copy_rows
from ..models import COUNTERS, Chunk, ChunkStatus, Cycle, CycleStatus, SetAsideRow
from .result import COLUMNS, ChunkSpec, FetchResult, InvalidResult, validate_result

__all__ = ["StoreOutcome", "StoreReport", "mark_rejected", "store_result"]

log = logging.getLogger(__name__)

#: PostgreSQL types of ``("cycle_id", *COLUMNS)`` in ``staged_accounts``: the binary COPY
#: sends values in these types (about twice the rows/s of text COPY, see
#: ``scripts/bench_store.py``).
STAGING_TYPES: tuple[str, ...] = ("int4", "int8", "varchar", "int8", "int8") + ("int8",) * len(
    COUNTERS
)


class StoreOutcome(enum.StrEnum):
    stored = "stored"
    duplicate = "duplicate"
    rejected = "rejected"
    #: for a chunk of a night that was closed before it came back: not stored
    late = "late"
    #: a node's notice that it started fetching the chunk (the reaper's staleness clock)
    progress = "progress"
    #: a node's notice that the API said METHOD_DISABLED: the chunk is held for a while
    held = "held"


@dataclass(frozen=True)
class StoreReport:
    outcome: StoreOutcome
    chunk_id: int | None = None
    cycle_id: int | None = None
    accounts: int = 0
    #: True for the one store that completed its cycle's last chunk.
    cycle_complete: bool = False
    reason: str = ""
    #: Rows set aside (a rule of the game broken); the others were stored.
    set_aside: int = 0


def _check_chunk(chunk: Chunk | None, result: FetchResult) -> None:
    spec = result.spec
    if chunk is None:
        raise InvalidResult(f"chunk {spec.chunk_id} does not exist")
    if (chunk.cycle_id, chunk.platform.value, chunk.first_id, chunk.last_id) != (
        spec.cycle_id,
        spec.platform,
        spec.first_id,
        spec.last_id,
    ):
        raise InvalidResult(f"chunk {spec.chunk_id}: cycle, platform or span differ")


def _set_aside(session: Session, result: FetchResult) -> None:
    """Record the rows that break a rule, with their reasons, for the operator."""
    if not result.set_aside:
        return
    spec = result.spec
    session.execute(
        insert(SetAsideRow),
        [
            {"cycle_id": spec.cycle_id, "chunk_id": spec.chunk_id, "account_id": s.account_id,
             "kind": "rule", "reason": s.reason[:1000], "row": list(s.row),
             "node": result.node or None}
            for s in result.set_aside
        ],
    )  # fmt: skip
    log.warning(
        "chunk %s: %d rows set aside, e.g. account %s: %s",
        spec.chunk_id, len(result.set_aside), result.set_aside[0].account_id,
        result.set_aside[0].reason,
    )  # fmt: skip


def store_result(session: Session, raw: object, *, now: int | None = None) -> StoreReport:
    """Validate and store ``raw`` in the session's transaction (the caller commits).

    An invalid result raises :class:`InvalidResult`; the caller rolls back and records
    the rejection with :func:`mark_rejected`. Rows that break a rule of the game are set
    aside (``set_aside_rows``, counted on the cycle) and the others stored. A result for
    a chunk whose night was closed (``missed``) is refused as ``late``: that night's
    numbers are final, and data read after a later night began is not that night's.
    ``now`` (Unix seconds) is the clock of the timestamp rules.

    A node's notices travel the same way as its results (the only queue a node may
    write to, authenticated the same way): ``{..chunk.., "progress": true}`` when a
    fetch starts, ``{..chunk.., "held": reason}`` when the API said METHOD_DISABLED.
    """
    if isinstance(raw, dict) and ("progress" in raw or "held" in raw):
        return _notice(session, raw)
    result = validate_result(raw, now=now)
    spec = result.spec
    chunk = session.execute(
        select(Chunk).where(Chunk.id == spec.chunk_id).with_for_update()
    ).scalar_one_or_none()
    _check_chunk(chunk, result)
    assert chunk is not None
    if chunk.status == ChunkStatus.stored:
        log.info("chunk %s already stored: duplicate ignored", spec.chunk_id)
        return StoreReport(StoreOutcome.duplicate, spec.chunk_id, spec.cycle_id)
    if chunk.status == ChunkStatus.missed:
        log.info("chunk %s came back after its night was closed: not stored", spec.chunk_id)
        return StoreReport(StoreOutcome.late, spec.chunk_id, spec.cycle_id)
    conn = session.connection()
    copy_rows(
        conn,
        "staged_accounts",
        ("cycle_id", *COLUMNS),
        ((spec.cycle_id, *row) for row in result.rows),
        types=STAGING_TYPES,
    )
    session.execute(
        update(Chunk)
        .where(Chunk.id == spec.chunk_id)
        .values(
            status=ChunkStatus.stored,
            stored_at=func.now(),
            accounts=len(result.rows),
            node=result.node or None,
            fetch_seconds=result.seconds,
            error=None,
        )
    )
    _set_aside(session, result)
    stored, total = conn.execute(
        text(
            "UPDATE cycles SET chunks_stored = chunks_stored + 1, accounts = accounts + :n, "
            "set_aside = set_aside + :a WHERE id = :cid RETURNING chunks_stored, chunks_total"
        ),
        {"n": len(result.rows), "a": len(result.set_aside), "cid": spec.cycle_id},
    ).one()
    complete = stored == total
    if complete:
        session.execute(
            update(Cycle)
            .where(Cycle.id == spec.cycle_id, Cycle.status == CycleStatus.fetching)
            .values(
                status=CycleStatus.diffing,
                fetched_at=func.now(),
                status_changed_at=func.now(),
            )
        )
    return StoreReport(
        StoreOutcome.stored, spec.chunk_id, spec.cycle_id, len(result.rows), complete,
        set_aside=len(result.set_aside),
    )  # fmt: skip


#: A chunk held on METHOD_DISABLED is published again after this long (a delayed retry on
#: the node instead would sit unacked near RabbitMQ's 30-minute consumer timeout).
HOLD = dt.timedelta(minutes=30)
_NOTICE_KEYS = {"v", "cycle_id", "chunk_id", "platform", "first_id", "last_id", "node",
                "progress", "held", "attempt", "token", "auth"}  # fmt: skip


def _notice(session: Session, raw: dict[str, Any]) -> StoreReport:
    """Apply a node's progress or hold notice to its dispatched chunk (nothing else)."""
    unknown = set(raw) - _NOTICE_KEYS
    if unknown or ("progress" in raw) == ("held" in raw):
        raise InvalidResult(f"notice: unexpected keys {sorted(unknown)[:5]}")
    spec = ChunkSpec.from_message(raw)
    reason = raw.get("held")
    if "held" in raw and (not isinstance(reason, str) or len(reason) > 500):
        raise InvalidResult("notice: held needs a short reason")
    if "progress" in raw and raw["progress"] is not True:
        raise InvalidResult("notice: progress must be true")
    chunk = session.execute(
        select(Chunk).where(Chunk.id == spec.chunk_id).with_for_update()
    ).scalar_one_or_none()
    if chunk is None or (chunk.cycle_id, chunk.platform.value, chunk.first_id, chunk.last_id) != (
        spec.cycle_id, spec.platform, spec.first_id, spec.last_id
    ):
        raise InvalidResult(f"notice for chunk {spec.chunk_id}: no such chunk")
    outcome = StoreOutcome.progress if "progress" in raw else StoreOutcome.held
    if chunk.status != ChunkStatus.dispatched:  # stored, missed, rejected...: too late
        return StoreReport(StoreOutcome.duplicate, spec.chunk_id, spec.cycle_id)
    if outcome == StoreOutcome.progress:
        chunk.progress_at = func.now()
    else:
        chunk.status = ChunkStatus.held
        chunk.not_before = func.now() + HOLD
        chunk.error = f"held: {reason}"[:1000]
        log.warning("chunk %s held until later: %s", spec.chunk_id, reason)
    return StoreReport(outcome, spec.chunk_id, spec.cycle_id)


def mark_rejected(session: Session, raw: object, reason: str) -> StoreReport:
    """Count a rejected result and, if it names a real unstored chunk, re-queue that chunk.

    Only the chunk id is taken from the bad message, and only to flag that chunk for a
    new fetch: a hostile node can at worst cause a re-fetch, never a write of its data.
    """
    chunk_id = raw.get("chunk_id") if isinstance(raw, dict) else None
    node = raw.get("node") if isinstance(raw, dict) else None
    log.warning("rejected result for chunk %r from node %r: %s", chunk_id, node, reason)
    if not isinstance(chunk_id, int) or isinstance(chunk_id, bool) or not 0 < chunk_id < 2**31:
        return StoreReport(StoreOutcome.rejected, reason=reason)
    chunk = session.execute(
        select(Chunk).where(Chunk.id == chunk_id).with_for_update()
    ).scalar_one_or_none()
    if chunk is None:
        return StoreReport(StoreOutcome.rejected, reason=reason)
    session.execute(
        update(Cycle)
        .where(Cycle.id == chunk.cycle_id)
        .values(rejected_results=Cycle.rejected_results + 1)
    )
    if chunk.status not in (ChunkStatus.stored, ChunkStatus.missed):
        chunk.status = ChunkStatus.rejected
        chunk.error = f"rejected: {reason}"[:1000]
    return StoreReport(StoreOutcome.rejected, chunk_id, chunk.cycle_id, reason=reason)
