"""The store's trust check: a result is stored only for a chunk this node was given now.

:func:`authenticate_result` runs in the store's transaction, before a byte of the result
is looked at as data, and in this order (cheap and lock-free first):

1. the ``auth`` member is well formed (node id, lease id, attempt, token, signature);
2. the node exists and the lease is one of its leases;
3. the signature over the whole message verifies with the lease's key;
4. the dispatch token matches the chunk's id, cycle, span and the attempt it names;
5. the node is approved: a banned or quarantined node's authentic result is refused,
   and its chunk handed to another node at once (it will never deliver it);
6. under the chunk's row lock: the chunk is ``dispatched`` and in that very attempt.

A chunk already ``stored`` is reported as a duplicate (a redelivery), not a rejection.
Everything else raises :class:`~battletracker.nodes.interfaces.ResultRejected` and
changes no chunk: :func:`record_rejection` only writes the rejection row and counters.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import Chunk, ChunkStatus
from ..signing import AUTH_KEY, derive_key, dispatch_token, verify_result_signature
from . import metrics
from .interfaces import ResultRejected
from .models import Node, NodeLease, NodeState, ResultRejection

__all__ = [
    "Authenticated",
    "authenticate_result",
    "dispatch_fields",
    "dispatch_key",
    "record_rejection",
]

log = logging.getLogger(__name__)


def dispatch_key(master: str) -> bytes:
    """The server-only key of dispatch tokens, derived from the server's ``secret_key``."""
    return derive_key(master, "dispatch-token")


def dispatch_fields(key: bytes, chunk_id: int, cycle_id: int, first_id: int, last_id: int,
                    attempt: int) -> dict[str, Any]:  # fmt: skip
    """What a ``fetch_range`` message carries besides the chunk: attempt and token."""
    return {"attempt": attempt,
            "token": dispatch_token(key, chunk_id, cycle_id, first_id, last_id, attempt)}


@dataclass(frozen=True)
class Authenticated:
    """A result that passed: the body to validate and store, and who sent it."""

    body: dict[str, Any]
    node_id: int
    node_name: str
    attempt: int
    #: the chunk was already stored: a redelivery, to be ignored
    duplicate: bool = False


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31:
        return value
    return None


def authenticate_result(session: Session, raw: object, *, key: bytes) -> Authenticated:
    """Check who sent ``raw`` and for which dispatch; raise ``ResultRejected`` if anything fails."""
    auth = raw.get(AUTH_KEY) if isinstance(raw, dict) else None
    chunk_id = _int(raw.get("chunk_id")) if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or not isinstance(auth, dict):
        raise ResultRejected("unsigned", "no auth member", chunk_id=chunk_id)
    node_id, lease_id, attempt = (_int(auth.get(k)) for k in ("node_id", "lease_id", "attempt"))
    token, sig = auth.get("token"), auth.get("sig")
    if (None in (node_id, lease_id, attempt, chunk_id) or set(auth) != {
            "node_id", "lease_id", "attempt", "token", "sig"}
            or not isinstance(token, str) or not isinstance(sig, str)):  # fmt: skip
        raise ResultRejected("unsigned", "malformed auth member", chunk_id=chunk_id,
                             claimed_node=node_id)  # fmt: skip
    assert node_id is not None and lease_id is not None and attempt is not None
    assert chunk_id is not None
    ctx: dict[str, Any] = {"claimed_node": node_id, "chunk_id": chunk_id}
    node = session.get(Node, node_id)
    if node is None:
        raise ResultRejected("unknown_node", f"node {node_id}", **ctx)
    lease = session.get(NodeLease, lease_id)
    if lease is None or lease.node_id != node_id:
        raise ResultRejected("bad_lease", f"lease {lease_id}", **ctx)
    if not verify_result_signature(lease.signing_key, raw, sig):
        raise ResultRejected("bad_signature", "", **ctx)
    ctx["node_id"] = node_id  # from here on the node proved who it is
    span = [raw.get(k) for k in ("cycle_id", "first_id", "last_id")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**41 for v in span):
        raise ResultRejected("bad_token", "chunk span missing", **ctx)
    cycle_id, first_id, last_id = (int(str(v)) for v in span)
    expected = dispatch_token(key, chunk_id, cycle_id, first_id, last_id, attempt)
    if not hmac.compare_digest(expected, token):
        raise ResultRejected("bad_token", "", **ctx)
    if node.state != NodeState.approved:
        raise ResultRejected("node_not_allowed", f"node {node_id} is {node.state.value}",
                             reissue_attempt=attempt, **ctx)  # fmt: skip
    chunk = session.execute(
        select(Chunk).where(Chunk.id == chunk_id).with_for_update()
    ).scalar_one_or_none()
    if chunk is None:
        raise ResultRejected("not_dispatched", "no such chunk", **ctx)
    body = {k: v for k, v in raw.items() if k != AUTH_KEY}
    body["node"] = node.name  # credit goes to the node that proved it, not a chosen name
    if chunk.status == ChunkStatus.stored:
        return Authenticated(body, node_id, node.name, attempt, duplicate=True)
    if chunk.attempts != attempt:
        raise ResultRejected("stale_attempt", f"attempt {attempt}, chunk at {chunk.attempts}",
                             **ctx)  # fmt: skip
    # issue 13: a result for a night closed since ('missed') is the store's to call late,
    # not the node's fault
    if chunk.status not in (ChunkStatus.dispatched, ChunkStatus.missed):
        raise ResultRejected("not_dispatched", f"chunk is {chunk.status.value}", **ctx)
    return Authenticated(body, node_id, node.name, attempt)


def record_rejection(session: Session, exc: ResultRejected) -> None:
    """Write the rejection row and bump the sender's counter (if it proved who it is)."""
    session.add(ResultRejection(reason=exc.reason, node_id=exc.node_id,
                                claimed_node=exc.claimed_node, chunk_id=exc.chunk_id,
                                detail=exc.detail[:500] or None))  # fmt: skip
    if exc.node_id is not None:
        session.execute(
            update(Node).where(Node.id == exc.node_id)
            .values(rejected_results=Node.rejected_results + 1)
        )  # fmt: skip
    metrics.REJECTED.labels(exc.reason).inc()
    log.warning("rejected result for chunk %s (node %s, claimed %s): %s",
                exc.chunk_id, exc.node_id, exc.claimed_node, exc)  # fmt: skip
