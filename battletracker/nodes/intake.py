"""The store task's body: authenticate a result, then store it and credit its node.

- Not authenticated (unsigned, forged, replayed, banned node, not the current dispatch):
  a rejection row and counters, and nothing else: no chunk changes state.
- Authenticated but invalid data: rejected and counted against the node, and the chunk
  goes back for a new fetch (only the holder of the current dispatch can cause that).
- Authenticated and valid: stored in the same transaction as the node's credit and the
  ``chunk_nodes`` row that spot checks use; a sampled result is spot-checked first
  (nodes/spotcheck.py) and refused if the server's re-fetch disagrees.
- A banned or quarantined node's authentic result: refused, and its chunk handed out
  again at once. A spot check that disagrees re-issues all the node's stored chunks of
  the running cycle; below the trust threshold the node is also quarantined.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from ..db import session_scope
from ..models import Chunk, ChunkStatus
from ..pipeline.coordinator import Publish, dispatch_chunks
from ..pipeline.result import InvalidResult, validate_result
from ..pipeline.store import StoreOutcome, StoreReport, mark_rejected, store_result
from ..settings import Settings
from .interfaces import ResultRejected
from .models import ChunkNode, Node, NodeState
from .services import node_service
from .spotcheck import record_verdict, reissue_node_chunks, should_check, spot_check
from .verify import Authenticated, authenticate_result, dispatch_key, record_rejection

__all__ = ["intake_result"]


def intake_result(settings: Settings, raw: object, publish: Publish) -> StoreReport:
    """Authenticate, store and spot-check ``raw`` (each outcome in its own transaction);
    ``publish`` hands chunks out again (a quarantined node's)."""
    if settings.broker_url.startswith("memory://") and isinstance(raw, dict) and "auth" not in raw:
        return _store_in_process(settings, raw)
    auth: Authenticated | None = None
    try:
        with session_scope(settings) as session:
            auth = authenticate_result(session, raw, key=dispatch_key(settings.secret_key))
            if auth.duplicate:
                return StoreReport(StoreOutcome.duplicate, _chunk_id(raw))
            _spot_check(session, settings, auth)  # before the store locks the cycle row
            report = store_result(session, auth.body)
            if report.outcome == StoreOutcome.stored:
                _credit(session, auth, report)
            return report
    except ResultRejected as exc:
        with session_scope(settings) as session:
            record_rejection(session, exc)
            _after_rejection(session, settings, exc, publish)
        return StoreReport(StoreOutcome.rejected, exc.chunk_id, reason=exc.reason)
    except InvalidResult as exc:
        assert auth is not None  # validation runs only after authentication
        rejected = ResultRejected("invalid", str(exc), node_id=auth.node_id,
                                  claimed_node=auth.node_id, chunk_id=_chunk_id(raw))  # fmt: skip
        with session_scope(settings) as session:
            record_rejection(session, rejected)
            mark_rejected(session, auth.body, str(exc))
        return StoreReport(StoreOutcome.rejected, rejected.chunk_id, reason="invalid")


def _store_in_process(settings: Settings, raw: dict[str, object]) -> StoreReport:
    """The in-memory broker (the demo) has no peer but this process: its unsigned results
    come from this process's own fetch task, so they are stored without a node."""
    try:
        with session_scope(settings) as session:
            return store_result(session, raw)
    except InvalidResult as exc:
        with session_scope(settings) as session:
            mark_rejected(session, raw, str(exc))
        return StoreReport(StoreOutcome.rejected, _chunk_id(raw), reason="invalid")


def _spot_check(session: Session, settings: Settings, auth: Authenticated) -> None:
    """Re-fetch a slice of a sampled result; a disagreement refuses it (rolled back)."""
    if "progress" in auth.body or "held" in auth.body:  # a notice (pipeline/store.py)
        return
    trust = session.execute(select(Node.trust).where(Node.id == auth.node_id)).scalar_one()
    if not should_check(settings, trust):
        return
    verdict = spot_check(validate_result(auth.body), settings)
    with session_scope(settings) as own:  # the verdict counts even if the store rolls back
        record_verdict(own, settings, auth.node_id, verdict, int(auth.body["chunk_id"]))
    if not verdict.ok:
        raise ResultRejected("spot_check", verdict.detail, node_id=auth.node_id,
                             claimed_node=auth.node_id, chunk_id=_chunk_id(auth.body),
                             reissue_attempt=auth.attempt)  # fmt: skip


def _after_rejection(session: Session, settings: Settings, exc: ResultRejected,
                     publish: Publish) -> None:  # fmt: skip
    """Quarantine a node below the trust threshold; hand its chunks to others."""
    if exc.node_id is None or exc.reissue_attempt is None or exc.chunk_id is None:
        return
    node = session.get(Node, exc.node_id, with_for_update=True)
    assert node is not None
    chunk = session.get(Chunk, exc.chunk_id, with_for_update=True)
    if chunk is None:
        return
    if node.state == NodeState.approved and node.trust < settings.trust_threshold:
        node_service(session, settings).quarantine(
            node.id, f"trust {node.trust:.2f} below {settings.trust_threshold}: {node.note}")
    if exc.reason == "spot_check" or node.state != NodeState.approved:
        # what it stored tonight before it was caught is not to be believed either
        reissue_node_chunks(session, node.id, chunk.cycle_id, publish)
    if chunk.status == ChunkStatus.dispatched and chunk.attempts == exc.reissue_attempt:
        dispatch_chunks(session, publish, where=[Chunk.id == chunk.id])


def _chunk_id(raw: object) -> int | None:
    value = raw.get("chunk_id") if isinstance(raw, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _credit(session: Session, auth: Authenticated, report: StoreReport) -> None:
    assert report.chunk_id is not None
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
