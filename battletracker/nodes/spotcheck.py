"""Spot checks: the server re-fetches a slice of a node's result and compares.

A result is checked with probability ``spot_check_fraction`` (default 1 %), and always
when its node's trust is below 1 (a node caught once is watched). The check re-fetches
one 100-id batch of the chunk with the server's own key (``wg_keys`` on the server): one
API request, done in the store task before the result is committed. Counters only grow
within a night, so a stored counter *above* the re-fetched one, or an account the API
does not have (invented) or one left out (missing), is a disagreement.

A disagreement lowers the node's trust by :data:`PENALTY` (an agreement raises it by
:data:`REWARD`, up to 1) and takes the node's stored chunks of the running cycle out of
staging to hand them out again; below ``trust_threshold`` the node is also quarantined:
its leases and broker user go and its results are refused. What it stored in finished cycles stays
(the operator sees the note); a check costs one request, so it cannot cover everything.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from ..models import COUNTERS, Chunk, ChunkStatus, Cycle, CycleStatus
from ..pipeline.chunking import batches
from ..pipeline.fetch import account_row
from ..pipeline.result import ChunkSpec, FetchResult, Row
from ..settings import Settings
from .models import ChunkNode, Node

__all__ = ["PENALTY", "REWARD", "SpotVerdict", "compare", "reissue_node_chunks", "should_check",
           "spot_check"]  # fmt: skip

log = logging.getLogger(__name__)

PENALTY = 0.3
REWARD = 0.05
Fetch = Callable[[list[int]], dict[int, Row]]
Publish = Callable[[Sequence[ChunkSpec]], None]


@dataclass(frozen=True)
class SpotVerdict:
    ok: bool
    detail: str = ""


def should_check(settings: Settings, trust: float, rng: random.Random | None = None) -> bool:
    if not settings.wg_keys:
        return False  # no key of the server's own: nothing to check with
    return trust < 1.0 or (rng or random).random() < settings.spot_check_fraction


def compare(stored: dict[int, Row], fetched: dict[int, Row]) -> SpotVerdict:
    """Disagreements between a node's rows and the server's re-fetch of the same ids."""
    invented = sorted(set(stored) - set(fetched))
    missing = sorted(set(fetched) - set(stored))
    if invented:
        return SpotVerdict(False, f"{len(invented)} invented accounts, e.g. {invented[0]}")
    if missing:
        return SpotVerdict(False, f"{len(missing)} accounts missing, e.g. {missing[0]}")
    for account_id, row in stored.items():
        for name, mine, real in zip(COUNTERS, row[4:], fetched[account_id][4:], strict=True):
            if mine > real:  # counters only grow within a night
                return SpotVerdict(False, f"account {account_id}: {name} {mine} > {real}")
    return SpotVerdict(True)


def _server_fetch(settings: Settings) -> Fetch:
    from ..wargaming.client import WargamingClient

    key = settings.wg_keys[0]

    def fetch(ids: list[int]) -> dict[int, Row]:
        async def run() -> dict[int, Row]:
            client = WargamingClient(settings.wg_api_url, key.app_id,
                                     timeout=settings.request_timeout)  # fmt: skip
            try:
                info = await client.account_info(ids)
            finally:
                await client.aclose()
            return {i: account_row(i, obj) for i, obj in info.items() if obj is not None}

        return asyncio.run(run())

    return fetch


def spot_check(result: FetchResult, settings: Settings, *, fetch: Fetch | None = None,
               rng: random.Random | None = None) -> SpotVerdict:  # fmt: skip
    """Re-fetch one batch of ``result``'s chunk (one with an account if it has any)."""
    spec = result.spec
    rng = rng or random.Random()
    all_batches = list(batches(spec.first_id, spec.last_id))
    if result.rows:
        anchor = rng.choice(result.rows)[0]
        batch = next(b for b in all_batches if b[0] <= anchor <= b[-1])
    else:
        batch = rng.choice(all_batches)
    fetched = (fetch or _server_fetch(settings))(list(batch))
    stored = {r[0]: r for r in result.rows if batch[0] <= r[0] <= batch[-1]}
    return compare(stored, fetched)


def record_verdict(session: Session, settings: Settings, node_id: int, verdict: SpotVerdict,
                   chunk_id: int) -> float:  # fmt: skip
    """Adjust the node's trust and counters; returns the new trust."""
    node = session.get(Node, node_id, with_for_update=True)
    assert node is not None
    node.spot_checks += 1
    if verdict.ok:
        node.trust = min(1.0, node.trust + REWARD)
    else:
        node.spot_failures += 1
        node.trust = max(0.0, node.trust - PENALTY)
        node.note = f"spot check of chunk {chunk_id} disagreed: {verdict.detail}"[:500]
        log.error("node %s (%s): spot check of chunk %s disagreed (%s); trust %.2f",
                  node.id, node.name, chunk_id, verdict.detail, node.trust)  # fmt: skip
    return node.trust


def reissue_node_chunks(session: Session, node_id: int, cycle_id: int,
                        publish: Publish) -> list[int]:  # fmt: skip
    """Take the node's stored chunks of a still-fetching cycle out of staging and hand
    them out again; returns their ids (none once the cycle has moved on)."""
    from ..pipeline.coordinator import dispatch_chunks

    cycle = session.get(Cycle, cycle_id, with_for_update=True)
    if cycle is None or cycle.status != CycleStatus.fetching:
        return []
    rows = session.execute(
        select(Chunk).join(ChunkNode, ChunkNode.chunk_id == Chunk.id)
        .where(ChunkNode.node_id == node_id, ChunkNode.cycle_id == cycle_id,
               Chunk.status == ChunkStatus.stored)
        .with_for_update(of=Chunk)
    ).scalars().all()  # fmt: skip
    if not rows:
        return []
    ids = [c.id for c in rows]
    accounts = sum(c.accounts or 0 for c in rows)
    conn = session.connection()
    # one pass over the cycle's partition for all the spans (staging has no index)
    conn.execute(text("DELETE FROM staged_accounts s USING unnest(CAST(:lo AS bigint[]), "
                      "CAST(:hi AS bigint[])) AS r(lo, hi) WHERE s.cycle_id = :cid "
                      "AND s.account_id BETWEEN r.lo AND r.hi"),
                 {"cid": cycle_id, "lo": [c.first_id for c in rows],
                  "hi": [c.last_id for c in rows]})  # fmt: skip
    session.execute(update(Chunk).where(Chunk.id.in_(ids)).values(
        status=ChunkStatus.rejected, stored_at=None, accounts=None, node=None,
        error=f"re-issued: node {node_id} quarantined"))  # fmt: skip
    session.execute(update(Cycle).where(Cycle.id == cycle_id).values(
        chunks_stored=Cycle.chunks_stored - len(ids),
        accounts=Cycle.accounts - accounts))  # fmt: skip
    session.execute(update(Node).where(Node.id == node_id).values(
        chunks_stored=Node.chunks_stored - len(ids),
        accounts_stored=Node.accounts_stored - accounts))  # fmt: skip
    session.execute(delete(ChunkNode).where(ChunkNode.chunk_id.in_(ids)))
    dispatch_chunks(session, publish, where=[Chunk.id.in_(ids)])
    log.warning("cycle %s: %d chunks of node %s re-issued", cycle_id, len(ids), node_id)
    return ids
