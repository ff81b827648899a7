"""``battletracker node run`` on real RabbitMQ, a real Celery worker and the simulator over HTTP.

The lease comes from a file here (``--lease-file``): the server's lease API is issue 12's
and is exercised with it in ``test_install_node``. What is checked: a chunk published the
way the coordinator publishes it is fetched and its result goes to ``store``; the worker
runs at low priority; a changed lease restarts the worker; SIGTERM hands the unfinished
chunk back to the queue.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from battletracker.volunteer.ledger import read_json
from battletracker.wargaming.simulator import XBOX_MIN, Population, Simulator, serve
from battletracker.wargaming.simulator.faults import Faults
from tests.common.services import rabbit_vhost, run_cli
from tests.integration.volunteer.nodes import (
    NodeProcess,
    children_of,
    declare_queues,
    nice_of,
    publish_chunk,
    queue_count,
    take_results,
    wait_for,
    write_lease,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def node_env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    sim = Simulator(Population(seed=3, xbox_ids=2000, ps_ids=10, new_per_day=0),
                    keys={"node-key": 50.0, "other-key": 50.0},
                    faults=Faults(latency=(0.25, 0.35)))  # fmt: skip
    with rabbit_vhost() as broker, serve(sim) as api:
        declare_queues(broker)
        yield {"broker": broker, "api": api.url, "dir": tmp_path / "node",
               "lease": tmp_path / "lease.json", "log": tmp_path / "node-run.log"}  # fmt: skip


def _chunk(chunk_id: int, size: int) -> dict[str, Any]:
    return {"chunk_id": chunk_id, "cycle_id": 1, "platform": "xbox",
            "first_id": XBOX_MIN, "last_id": XBOX_MIN + size - 1}  # fmt: skip


def test_node_run_fetches_under_its_lease_at_low_priority(node_env: dict[str, Any]) -> None:
    broker, d = node_env["broker"], node_env["dir"]
    write_lease(node_env["lease"], broker, [("node-key", 40)])
    env = {"BATTLETRACKER_WG_API_URL": node_env["api"]}
    node = NodeProcess(["--dir", str(d), "--lease-file", str(node_env["lease"])], env,
                       node_env["log"])  # fmt: skip
    try:
        worker_log = d / "worker.log"
        wait_for("the fetch worker", lambda: worker_log.exists() and "ready." in
                 worker_log.read_text(), log=node_env["log"])  # fmt: skip
        first_pid = read_json(d / "runner.json")["worker_pid"]
        # low priority: the worker and its pool process run at nice 10, node run at 0
        assert nice_of(first_pid) == 10
        assert all(nice_of(c) == 10 for c in children_of(first_pid))
        assert nice_of(node.proc.pid) == 0

        publish_chunk(broker, _chunk(1, 500))
        results = wait_for("a result on the store queue", lambda: take_results(broker),
                           log=worker_log)  # fmt: skip
        assert [r["chunk_id"] for r in results] == [1]
        assert len(results[0]["rows"]) > 0 and results[0]["first_id"] == XBOX_MIN

        # the lease changes (another key): node run renews, sees it, restarts the worker
        write_lease(node_env["lease"], broker, [("other-key", 30)])
        wait_for("a new worker", lambda: read_json(d / "runner.json").get("worker_pid")
                 not in (None, first_pid), log=node_env["log"])  # fmt: skip
        assert read_json(d / "runner.json")["lease"]["keys"][0]["key"] == "othe…"
        status = run_cli("node", "status", "--dir", str(d), env=env)
        assert "1 chunks" in status and f"{len(results[0]['rows'])} accounts" in status
        assert "othe… at 30 rps" in status
        data = json.loads(run_cli("node", "status", "--dir", str(d), "--json", env=env))
        assert data["local"]["running"] is True and data["local"]["total"]["chunks"] == 1
    finally:
        code = node.terminate()
    assert code == 0, node_env["log"].read_text()[-3000:]
    assert read_json(d / "runner.json")["state"] == "stopped"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stopping_hands_the_unfinished_chunk_back(node_env: dict[str, Any], sig: int) -> None:
    broker, d = node_env["broker"], node_env["dir"]
    # 10,000 ids at 2 rps: 50 s of work, much longer than the 10 s a stopping worker allows
    write_lease(node_env["lease"], broker, [("node-key", 2)], seconds=3600)
    env = {"BATTLETRACKER_WG_API_URL": node_env["api"]}
    node = NodeProcess(["--dir", str(d), "--lease-file", str(node_env["lease"])], env,
                       node_env["log"])  # fmt: skip
    try:
        worker_log = d / "worker.log"
        wait_for("the fetch worker", lambda: worker_log.exists() and "ready." in
                 worker_log.read_text(), log=node_env["log"])  # fmt: skip
        publish_chunk(broker, _chunk(2, 10_000))
        wait_for("the chunk taken", lambda: "Task battletracker.fetch_range" in
                 worker_log.read_text(), log=worker_log)  # fmt: skip
        assert queue_count(broker, "fetch") == 0
    finally:
        code = node.terminate(timeout=90, sig=sig)
    assert code == 0, node_env["log"].read_text()[-3000:]
    # back in the queue for another node, and nothing half-done went to the store
    assert queue_count(broker, "fetch") == 1, (d / "worker.log").read_text()[-3000:]
    assert take_results(broker) == []


def test_a_chunk_for_a_newer_node_is_requeued_not_run(node_env: dict[str, Any]) -> None:
    broker, d = node_env["broker"], node_env["dir"]
    write_lease(node_env["lease"], broker, [("node-key", 40)], seconds=3600)
    env = {"BATTLETRACKER_WG_API_URL": node_env["api"]}
    node = NodeProcess(["--dir", str(d), "--lease-file", str(node_env["lease"])], env,
                       node_env["log"])  # fmt: skip
    try:
        worker_log = d / "worker.log"
        wait_for("the fetch worker", lambda: worker_log.exists() and "ready." in
                 worker_log.read_text(), log=node_env["log"])  # fmt: skip
        publish_chunk(broker, {**_chunk(3, 500), "min_version": "99.0"})
        wait_for("the refusal", lambda: "needs battletracker 99.0" in worker_log.read_text(),
                 log=worker_log)  # fmt: skip
        # the worker stopped itself; node run saw it and says so
        wait_for("node run noticing", lambda: "stopped by itself" in
                 json.dumps(read_json(d / "runner.json")), log=node_env["log"])  # fmt: skip
        wait_for("the chunk back in fetch", lambda: queue_count(broker, "fetch") == 1,
                 log=worker_log)  # fmt: skip
        assert take_results(broker) == []
        assert "succeeded" not in worker_log.read_text()  # never run, only handed back
    finally:
        code = node.terminate(timeout=90)
    assert code == 0
    assert queue_count(broker, "fetch") == 1 and take_results(broker) == []
