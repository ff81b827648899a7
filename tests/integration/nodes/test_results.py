"""Results tied to a dispatch and a node: forged, replayed, banned and oversized ones refused.

A node driven by hand takes its chunks from ``fetch`` with its own broker user, signs
with its lease and publishes through ``bt.results``, like its worker; the hostile
variants go the same way. Each is refused for its own reason, counted, and changes no
chunk; the night still ends with every account exact.
"""

from __future__ import annotations

import copy
import time

import httpx
import pytest

from battletracker.app import configure
from battletracker.signing import sign_result
from tests.common.nodes import HandNode, fetch_results, publish, settings_from
from tests.common.rig import Rig
from tests.common.services import run_cli

pytestmark = pytest.mark.integration


def _statuses(rig: Rig) -> dict[str, int]:
    return dict(rig.query("SELECT status, count(*) FROM chunks GROUP BY status"))


def _wait_rejections(rig: Rig, n: int, timeout: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while rig.query("SELECT count(*) FROM result_rejections")[0][0] < n:
        assert time.monotonic() < deadline, rig.query("SELECT reason FROM result_rejections")
        time.sleep(0.2)
    return dict(rig.query("SELECT reason, count(*) FROM result_rejections GROUP BY reason"))


def test_forged_replayed_banned_and_oversized_results_are_refused(rig: Rig) -> None:
    server = rig.server()
    run_cli("cycle", "start", "--date", "2026-01-02", env=rig.server_env)
    honest, evicted = HandNode(rig.nodes, "honest"), HandNode(rig.nodes, "evicted")
    total = rig.query("SELECT chunks_total FROM cycles")[0][0]
    chunks = honest.take(total - 1)
    [held] = evicted.take(1)
    fetched = fetch_results(rig.sim, [*chunks, held])
    results = {c["chunk_id"]: r for c, r in zip([*chunks, held], fetched, strict=True)}
    a, b, c = chunks[:3]
    ra, rb, rc = (results[x["chunk_id"]] for x in (a, b, c))
    lease = honest.keeper.lease
    assert lease is not None

    forged = sign_result(ra, node_id=honest.node_id, lease_id=int(lease["lease_id"]),
                         signing_key="00" * 32, token=a["token"], attempt=a["attempt"])  # fmt: skip
    tampered = honest.sign(copy.deepcopy(ra), a)
    tampered["rows"][0][4] += 1000  # more battles than the account played
    other_token = honest.sign(rb, {**b, "token": a["token"]})  # chunk a's token on b
    unsigned = dict(rc)
    oversized = honest.sign({**rc, "rows": [[1, "x" * 60, 0, 0, *[0] * 14]] * 4000}, c)
    evicted_result = evicted.sign(results[held["chunk_id"]], held)
    run_cli("nodes", "ban", str(evicted.node_id), env=rig.server_env)
    for message in (forged, tampered, other_token, unsigned, oversized):
        honest.send(message)
    # the evicted node's result was already queued when it was banned
    publish(rig.broker, "battletracker.store_results", [evicted_result])
    # an earlier attempt: chunk c is handed out again (attempt 2), as the reaper or
    # 'cycle retry' do; its attempt-1 result arrives afterwards
    configure(settings_from(rig.server_env))
    from battletracker.db import session_scope
    from battletracker.models import Chunk
    from battletracker.pipeline.coordinator import dispatch_chunks
    from battletracker.pipeline.tasks import publish_chunks

    with session_scope(settings_from(rig.server_env)) as session:
        dispatch_chunks(session, publish_chunks, where=[Chunk.id == c["chunk_id"]])
    # chunk c again, and the evicted node's chunk, handed out at once when its authentic
    # result was refused (it would never deliver one the store accepts)
    again = {m["chunk_id"]: m for m in honest.take(2)}
    c2, held2 = again[c["chunk_id"]], again[held["chunk_id"]]
    assert c2["attempt"] == held2["attempt"] == 2
    honest.send(honest.sign(rc, c))
    reasons = _wait_rejections(rig, 7)
    assert reasons == {"bad_signature": 2, "bad_token": 1, "unsigned": 1, "oversized": 1,
                       "node_not_allowed": 1, "stale_attempt": 1}  # fmt: skip
    # nothing refused changed a chunk: all are still out, none stored, failed or rejected
    assert _statuses(rig) == {"dispatched": total}
    counted = dict(rig.query("SELECT name, rejected_results FROM nodes"))
    # forgers cannot charge another node; the evicted node's own result counts against it
    assert counted == {"honest": 2, "evicted": 1}

    # the honest results (c in its current attempt) complete the night...
    for chunk in chunks:
        source = c2 if chunk["chunk_id"] == c["chunk_id"] else chunk
        honest.send(honest.sign(results[chunk["chunk_id"]], source))
    # ...with the evicted node's chunk, fetched by the honest node in its new attempt
    honest.send(honest.sign(results[held["chunk_id"]], held2))
    rig.wait_done()
    honest.stop()
    rig.assert_players_match_truth(1)
    assert server.proc.poll() is None
    credit = dict(rig.query("SELECT name, chunks_stored FROM nodes"))
    assert credit == {"honest": total, "evicted": 0}
    metrics = httpx.get(rig.nodes.url + "/metrics", timeout=10).text
    assert 'battletracker_results_rejected_total{reason="bad_signature"} 2.0' in metrics
    assert 'battletracker_results_rejected_total{reason="oversized"} 1.0' in metrics
