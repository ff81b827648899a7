"""The store task's body: authenticate a result, then store it and credit its node.

- Not authenticated (unsigned, forged, replayed, banned node, not the current dispatch):
  a rejection row and counters, and nothing else: no chunk changes state.
- Authenticated but invalid data: rejected and counted against the node, and the chunk
  goes back for a new fetch (only the holder of the current dispatch can cause that).
- Authenticated and valid: stored in the same transaction as the node's credit and the
  ``chunk_nodes`` row that spot checks use.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..db import session_scope
from ..pipeline.result import InvalidResult
from ..pipeline.store import StoreOutcome, StoreReport, mark_rejected, store_result
from ..settings import Settings
from .interfaces import ResultRejected
from .models import ChunkNode, Node
from .verify import Authenticated, authenticate_result, dispatch_key, record_rejection

__all__ = ["intake_result"]


def intake_result(settings: Settings, raw: object) -> StoreReport:
    """Authenticate and store ``raw`` (each outcome in its own transaction)."""
    auth: Authenticated | None = None
    try:
        with session_scope(settings) as session:
            auth = authenticate_result(session, raw, key=dispatch_key(settings.secret_key))
            if auth.duplicate:
                return StoreReport(StoreOutcome.duplicate, _chunk_id(raw))
            report = store_result(session, auth.body)
            if report.outcome == StoreOutcome.stored:
                _credit(session, auth, report)
            return report
    except ResultRejected as exc:
        with session_scope(settings) as session:
            record_rejection(session, exc)
        return StoreReport(StoreOutcome.rejected, exc.chunk_id, reason=exc.reason)
    except InvalidResult as exc:
        assert auth is not None  # validation runs only after authentication
        rejected = ResultRejected("invalid", str(exc), node_id=auth.node_id,
                                  claimed_node=auth.node_id, chunk_id=_chunk_id(raw))  # fmt: skip
        with session_scope(settings) as session:
            record_rejection(session, rejected)
            mark_rejected(session, auth.body, str(exc))
        return StoreReport(StoreOutcome.rejected, rejected.chunk_id, reason="invalid")


def _chunk_id(raw: object) -> int | None:
    value = raw.get("chunk_id") if isinstance(raw, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _credit(session: object, auth: Authenticated, report: StoreReport) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session) and report.chunk_id is not None
    session.execute(
        update(Node).where(Node.id == auth.node_id).values(
            chunks_stored=Node.chunks_stored + 1,
            accounts_stored=Node.accounts_stored + report.accounts,
        )
    )
    session.execute(
        pg_insert(ChunkNode)
        .values(chunk_id=report.chunk_id, node_id=auth.node_id, cycle_id=report.cycle_id,
                attempt=auth.attempt)
        .on_conflict_do_update(index_elements=["chunk_id"],
                               set_={"node_id": auth.node_id, "attempt": auth.attempt,
                                     "spot_ok": None})
    )  # fmt: skip
