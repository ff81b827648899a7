"""Nothing lost, nothing doubled: killed workers, duplicate and hostile deliveries, two beats.

Each test gets its own database, RabbitMQ vhost, simulator and worker processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from battletracker.app import app, configure
from battletracker.pipeline.queues import QueueDepthCollector, queue_depths
from battletracker.settings import Settings, load_settings
from battletracker.testing.databases import temporary_database
from battletracker.wargaming.simulator import (
    Population,
    Simulator,
    serve,
)
from tests.common.nodes import HandNode, fetch_results
from tests.common.rig import IDS, Rig
from tests.common.services import rabbit_vhost, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    sim = Simulator(Population(seed=5, xbox_ids=IDS, ps_ids=IDS, new_per_day=0),
                    keys={"k": 40.0}, day=1)  # fmt: skip
    with temporary_database(Settings()) as db, rabbit_vhost() as broker, serve(sim) as api:
        r = Rig(db, broker, sim, api.url, tmp_path)
        try:
            yield r
        finally:
            r.stop()


def test_a_killed_fetch_worker_loses_nothing(rig: Rig) -> None:
    rig.server()
    # a slow key: the pacer sends a second's budget at once, and at 40 rps the whole
    # night (30 requests) would be fetched before the first store is seen
    slow = {**rig.volunteer_env, "BATTLETRACKER_WG_KEYS": "k:4"}
    first = rig.worker("fetch", "fetch", slow)
    run_cli("cycle", "start", "--date", "2026-01-02", env=rig.server_env)
    deadline = time.monotonic() + 60
    while not rig.query("SELECT 1 FROM chunks WHERE status = 'stored'"):
        assert time.monotonic() < deadline, "no chunk stored"
        time.sleep(0.05)
    first.kill()  # SIGKILL mid-night: its unacked chunk goes back to the queue
    total = rig.query("SELECT chunks_total FROM cycles")[0][0]
    assert rig.query("SELECT count(*) FROM chunks WHERE status = 'stored'")[0][0] < total
    rig.worker("fetch2", "fetch", rig.volunteer_env)
    rig.wait_done()
    rig.assert_players_match_truth(1)
    [(stored, total2, accounts)] = rig.query(
        "SELECT chunks_stored, chunks_total, accounts FROM cycles"
    )
    assert stored == total2 == total
    assert accounts == rig.query("SELECT count(*) FROM players")[0][0]


def _use_vhost(rig: Rig) -> None:
    configure(load_settings(environ={"BATTLETRACKER_BROKER_URL": rig.broker}))


def test_duplicate_and_hostile_results_through_the_broker(rig: Rig) -> None:
    server = rig.server()
    run_cli("cycle", "start", "--date", "2026-01-02", env=rig.server_env)  # no fetch worker
    node = HandNode(rig.nodes, "by-hand")  # a node that takes every chunk message itself
    total = rig.query("SELECT chunks_total FROM cycles")[0][0]
    chunks = node.take(total)
    results = [node.sign(r, c) for r, c in zip(fetch_results(rig.sim, chunks), chunks, strict=True)]
    hostile: list[object] = []
    for r in results:  # unsigned, as anyone with broker access could send them
        body = {k: v for k, v in r.items() if k != "auth"}
        hostile.append({**body, "rows": [[*body["rows"][0][:4], -1, *body["rows"][0][5:]],
                                         *body["rows"][1:]]})  # fmt: skip
        hostile.append({**body, "rows": [[r["last_id"] + 1, *body["rows"][0][1:]],
                                         *body["rows"][1:]]})  # fmt: skip
    hostile += ["not a result", {"v": 1, "chunk_id": 10**12}, {"rows": [[1] * 1000]}]
    for message in hostile:
        node.send(message)  # type: ignore[arg-type]
    deadline = time.monotonic() + 60
    while rig.query("SELECT count(*) FROM result_rejections")[0][0] < len(hostile):
        assert time.monotonic() < deadline, "hostile results not all refused"
        time.sleep(0.2)
    # refused results change no chunk: every one is still out with this node
    assert rig.query("SELECT DISTINCT status FROM chunks") == [("dispatched",)]
    for r in results:  # every good result twice: a redelivery
        node.send(r)
        node.send(r)
    rig.wait_done()
    node.stop()
    rig.assert_players_match_truth(1)
    stored, total2, rejected = rig.query(
        "SELECT chunks_stored, chunks_total, rejected_results FROM cycles")[0]  # fmt: skip
    assert stored == total2 == total
    assert rejected == 0, "no authenticated result was invalid"
    reasons = dict(rig.query("SELECT reason, count(*) FROM result_rejections GROUP BY reason"))
    assert reasons == {"unsigned": len(hostile)}
    credit = rig.query("SELECT chunks_stored, accounts_stored, rejected_results FROM nodes")
    assert credit == [(total, rig.query("SELECT count(*) FROM players")[0][0], 0)]
    assert server.proc.poll() is None, "a hostile result must never crash the worker"
    log = "".join(p.read_text() for p in rig.logs.glob("server-*.log"))
    assert log.count("rejected result") >= len(hostile)


def test_two_beats_start_one_cycle(rig: Rig) -> None:
    rig.server(concurrency=2)
    _use_vhost(rig)
    for _ in range(2):  # a second beat sends the same start at the same time
        app.send_task("battletracker.start_cycle", args=("2026-01-02",))
    deadline = time.monotonic() + 30
    while not rig.query("SELECT 1 FROM cycles WHERE chunks_total > 0"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1.0)  # let the second start finish
    assert rig.query("SELECT count(*) FROM cycles")[0][0] == 1
    chunks = rig.query("SELECT count(*), count(DISTINCT (platform, first_id)) FROM chunks")[0]
    assert chunks[0] == chunks[1] == 2 * IDS // 300
    ready, consumers = queue_depths(rig.broker)["fetch"]
    assert ready == chunks[0], "each chunk published exactly once"
    assert consumers == 0
    scraped = {m.name: m for m in QueueDepthCollector(load_settings(
        environ={"BATTLETRACKER_BROKER_URL": rig.broker})).collect()}  # fmt: skip
    assert scraped["battletracker_broker_up"].samples[0].value == 1
    fetch_sample = [x for x in scraped["battletracker_queue_ready"].samples
                    if x.labels == {"queue": "fetch"}]  # fmt: skip
    assert fetch_sample[0].value == chunks[0]
    rig.worker("fetch", "fetch", rig.volunteer_env)
    rig.wait_done()
    rig.assert_players_match_truth(1)


def test_a_node_with_a_blocked_key_stops_and_hands_its_chunk_back(tmp_path: Path) -> None:
    population = Population(seed=5, xbox_ids=IDS, ps_ids=IDS, new_per_day=0)
    sim = Simulator(population, keys={"k": 40.0, "bad": 40.0}, blocked_keys={"bad"}, day=1)
    with temporary_database(Settings()) as db, rabbit_vhost() as broker, serve(sim) as api:
        rig = Rig(db, broker, sim, api.url, tmp_path)
        try:
            rig.server()
            bad_env = {**rig.volunteer_env, "BATTLETRACKER_WG_KEYS": "bad:40"}
            blocked = rig.worker("blocked", "fetch", bad_env)
            run_cli("cycle", "start", "--date", "2026-01-02", env=rig.server_env)
            deadline = time.monotonic() + 30
            while queue_depths(broker)["fetch"][1] > 0:  # its fetch consumer goes away
                assert time.monotonic() < deadline, "the node kept consuming with a bad key"
                time.sleep(0.2)
            assert blocked.proc.poll() is None, "the node stays up (it only stops fetching)"
            # the node told the server over HTTP: a row the operator sees, and a metric
            [(reason,)] = rig.query("SELECT reason FROM key_reports")
            assert "APPLICATION_IS_BLOCKED" in reason
            metrics = httpx.get(rig.nodes.url + "/metrics", timeout=10).text
            assert "battletracker_key_unusable_reports_total 1.0" in metrics
            assert rig.query("SELECT count(*) FROM chunks WHERE status = 'stored'")[0][0] == 0
            total = rig.query("SELECT chunks_total FROM cycles")[0][0]
            assert queue_depths(broker)["fetch"][0] == total, "every chunk back in the queue"
            rig.worker("good", "fetch", rig.volunteer_env)
            rig.wait_done()
            rig.assert_players_match_truth(1)
        finally:
            rig.stop()
