"""Store one fetch result: check, COPY into staging, set odd rows aside, mark, count.

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
import time
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.orm import Session

from ..db import copy_rows
from ..models import Chunk, ChunkStatus, Cycle, CycleStatus, SetAsideRow
from .result import (
    COLUMNS,
    ChunkSpec,
    FetchResult,
    InvalidResult,
    check_envelope,
    validate_result,
)
from .staging import SAVEPOINT, STAGING_TYPES, Odd, stage_rows

__all__ = ["STAGING_TYPES", "StoreOutcome", "StoreReport", "mark_rejected", "store_result"]

log = logging.getLogger(__name__)


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


def _same_chunk(chunk: Chunk, spec: ChunkSpec) -> bool:
    return (chunk.cycle_id, chunk.platform.value, chunk.first_id, chunk.last_id) == (
        spec.cycle_id,
        spec.platform,
        spec.first_id,
        spec.last_id,
    )


def _storable(value: object) -> object:
    """A set-aside value PostgreSQL can keep: NUL and lone surrogates written as escapes.

    ``jsonb`` refuses ``\\u0000`` and UTF-8 cannot carry a lone surrogate; the operator
    still sees where they were (``nul\\u0000name``), and the row's other values as sent.
    """
    if not isinstance(value, str):
        return value
    text = value.replace("\x00", "\\u0000")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _set_aside(session: Session, result: FetchResult) -> list[Odd]:
    """Record the rows that break a rule, with their reasons, for the operator."""
    if not result.set_aside:
        return []
    spec = result.spec
    session.execute(
        insert(SetAsideRow),
        [
            {"cycle_id": spec.cycle_id, "chunk_id": spec.chunk_id, "account_id": s.account_id,
             "kind": "rule", "reason": s.reason[:1000], "row": [_storable(v) for v in s.row],
             "node": result.node or None}
            for s in result.set_aside
        ],
    )  # fmt: skip
    return [(s.account_id, s.reason) for s in result.set_aside]


def _store_checked_in_python(session: Session, raw: object, now: int) -> tuple[int, list[Odd]]:
    """The rows of a result the set-based path could not take, judged row by row.

    Raises :class:`InvalidResult` for a malformed result; else stores the good rows and
    sets the others aside. Returns the rows stored and those set aside.
    """
    result = validate_result(raw, now=now)
    spec = result.spec
    copy_rows(
        session.connection(),
        "staged_accounts",
        ("cycle_id", *COLUMNS),
        ((spec.cycle_id, *row) for row in result.rows),
        types=STAGING_TYPES,
    )
    return len(result.rows), _set_aside(session, result)


#: Lock the chunk's row (as it is) and set the staging savepoint: one round trip.
_LOCK = sql.SQL(
    "SELECT cycle_id, platform, first_id, last_id, status FROM chunks WHERE id = {chunk} "
    "FOR UPDATE; SAVEPOINT {savepoint}"
)
#: The chunk marked stored and the cycle's counters bumped, in one round trip at the end
#: (the cycle's row is shared by every store of the night: locked only until commit).
_MARK_STORED = text("""
WITH k AS (
  UPDATE chunks SET status = 'stored', stored_at = now(), accounts = :n, node = :node,
                    fetch_seconds = :seconds, error = NULL
  WHERE id = :chunk RETURNING cycle_id
)
UPDATE cycles SET chunks_stored = chunks_stored + 1, accounts = accounts + :n,
                  set_aside = set_aside + :a
WHERE id = (SELECT cycle_id FROM k)
RETURNING chunks_stored, chunks_total
""")


def _lock_chunk(conn: Connection, chunk_id: int) -> tuple[Any, ...] | None:
    """The chunk's ``(cycle_id, platform, first_id, last_id, status)``, its row locked
    (None if there is no such chunk), and the savepoint of :func:`stage_rows` set."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    query = _LOCK.format(chunk=sql.Literal(chunk_id), savepoint=sql.Identifier(SAVEPOINT))
    row = raw.execute(query).fetchone()
    return None if row is None else tuple(row)


def store_result(session: Session, raw: object, *, now: int | None = None) -> StoreReport:
    """Check and store ``raw`` in the session's transaction (the caller commits).

    An invalid result raises :class:`InvalidResult`; the caller rolls back and records
    the rejection with :func:`mark_rejected`. Rows that break a rule of the game are set
    aside (``set_aside_rows``, counted on the cycle) and the others stored. A result for
    a chunk whose night was closed (``missed``) is refused as ``late``: that night's
    numbers are final, and data read after a later night began is not that night's.
    ``now`` (Unix seconds) is the clock of the timestamp rules.

    The rows are checked set-based (``pipeline/staging.py``): the COPY checks their
    types, SQL the rules; a result it cannot take is judged by ``validate_result``, the
    readable reference of both, with the same outcome. Staging has no key: the chunk's
    row lock and status store a chunk once, its rows hold each of its ids once (checked
    as it is COPYed), and a cycle's chunks do not overlap.

    A node's notices travel the same way as its results (the only queue a node may
    write to, authenticated the same way): ``{..chunk.., "progress": true}`` when a
    fetch starts, ``{..chunk.., "held": reason}`` when the API said METHOD_DISABLED.
    """
    if isinstance(raw, dict) and ("progress" in raw or "held" in raw):
        return _notice(session, raw)
    envelope = check_envelope(raw)
    spec = envelope.spec
    clock = int(time.time()) if now is None else now
    conn = session.connection()
    chunk = _lock_chunk(conn, spec.chunk_id)
    same = chunk is not None and chunk[:4] == (
        spec.cycle_id, spec.platform, spec.first_id, spec.last_id)  # fmt: skip
    if not same or chunk is None or chunk[4] in (ChunkStatus.stored, ChunkStatus.missed):
        # not to be stored (rare): a malformed result is still refused as malformed first
        validate_result(raw, now=clock)
    if chunk is None:
        raise InvalidResult(f"chunk {spec.chunk_id} does not exist")
    if not same:
        raise InvalidResult(f"chunk {spec.chunk_id}: cycle, platform or span differ")
    if chunk[4] == ChunkStatus.stored:
        log.info("chunk %s already stored: duplicate ignored", spec.chunk_id)
        return StoreReport(StoreOutcome.duplicate, spec.chunk_id, spec.cycle_id)
    if chunk[4] == ChunkStatus.missed:
        log.info("chunk %s came back after its night was closed: not stored", spec.chunk_id)
        return StoreReport(StoreOutcome.late, spec.chunk_id, spec.cycle_id)
    odd = stage_rows(conn, spec, envelope.rows, node=envelope.node, now=clock)
    if odd is None:
        accounts, odd = _store_checked_in_python(session, raw, clock)
    else:
        accounts = len(envelope.rows) - len(odd)
    if odd:
        log.warning("chunk %s: %d rows set aside, e.g. account %s: %s",
                    spec.chunk_id, len(odd), odd[0][0], odd[0][1])  # fmt: skip
    stored, total = conn.execute(
        _MARK_STORED,
        {"chunk": spec.chunk_id, "n": accounts, "a": len(odd),
         "node": envelope.node or None, "seconds": envelope.seconds},
    ).one()  # fmt: skip
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
        StoreOutcome.stored, spec.chunk_id, spec.cycle_id, accounts, complete,
        set_aside=len(odd),
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
    if chunk is None or not _same_chunk(chunk, spec):
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
