"""A hostile volunteer with its own broker credentials cannot cross the broker boundary.

Every attack of the issue is tried with the node's own RabbitMQ user: the broker refuses
what the user may not do (publish to ``control``, the default exchange or remote
control; consume ``store`` or ``control``; declare anything), and the store consumer's
guard refuses everything but a plain ``store_results`` arriving through ``bt.results``.
No cycle is created, no chunk changes, the server worker keeps running and consuming
``store``, and an honest node then finishes the night exactly.
"""

from __future__ import annotations

import time
from typing import Any

import amqp.exceptions
import kombu
import pytest

from battletracker.pipeline.queues import queue_depths
from tests.common.nodes import EMBED, HandNode, publish
from tests.common.rig import Rig
from tests.common.services import run_cli

pytestmark = pytest.mark.integration

Refused = (amqp.exceptions.AccessRefused, amqp.exceptions.NotAllowed)


def _state(rig: Rig) -> tuple[Any, ...]:
    return (rig.query("SELECT id, date, status FROM cycles ORDER BY id"),
            rig.query("SELECT id, status, attempts, error FROM chunks ORDER BY id"))  # fmt: skip


def test_a_node_cannot_cross_the_broker_boundary(rig: Rig) -> None:
    server = rig.server()
    run_cli("cycle", "start", "--date", "2026-01-02", env=rig.server_env)
    node = HandNode(rig.nodes, "mallory")
    url = node.broker_url
    before = _state(rig)
    chunk = {"chunk_id": 1, "cycle_id": 1, "platform": "ps", "first_id": before[1][0][0],
             "last_id": 1}  # fmt: skip

    # -- refused by the broker itself ---------------------------------------------------
    for exchange, key in (("battletracker", "control"), ("", "control"), ("", "store"),
                          ("battletracker", "fetch"), ("celery.pidbox", "")):  # fmt: skip
        with pytest.raises(Refused):
            publish(url, "battletracker.start_cycle", ["2099-01-01"], exchange=exchange,
                    routing_key=key)  # fmt: skip
    # a Celery broadcast (shutdown, cancel_consumer) goes through celery.pidbox: refused
    with pytest.raises(Refused):
        publish(url, "shutdown", [], exchange="celery.pidbox", routing_key="")
    for queue in ("store", "control"):  # reading them would steal honest results
        with kombu.Connection(url, connect_timeout=5) as conn, pytest.raises(Refused):
            consumer = conn.Consumer([kombu.Queue(queue, no_declare=True)], callbacks=[])
            consumer.consume()
            conn.drain_events(timeout=2)
    with kombu.Connection(url, connect_timeout=5) as conn, pytest.raises(Refused):
        kombu.Queue("mine", channel=conn.channel()).declare()

    # -- allowed to reach the store consumer, refused by its guard ------------------------
    attacks: list[tuple[str, list[Any], dict[str, Any]]] = [
        ("battletracker.start_cycle", ["2099-01-01"], {}),
        ("battletracker.chunk_failed", [chunk, "forged", False], {}),
        ("battletracker.key_unusable", ["celery@server", "k…", "forged CRITICAL line"], {}),
        ("battletracker.materialise_boards", [1], {}),
        ("celery.accumulate", [1, 2], {}),
        # store_results carrying a callback the server worker would send with its rights
        ("battletracker.store_results", [{}], {"embed": {**EMBED, "callbacks": [
            {"task": "battletracker.start_cycle", "args": ["2099-01-01"], "kwargs": {},
             "options": {}, "subtask_type": None, "immutable": False}]}}),
        ("battletracker.store_results", [{}], {"embed": {**EMBED, "chain": [
            {"task": "battletracker.start_cycle", "args": ["2099-01-02"], "kwargs": {},
             "options": {}, "subtask_type": None, "immutable": True}]}}),
        ("battletracker.store_results", [{}], {"eta": "2099-01-01T00:00:00+00:00"}),
        ("battletracker.store_results", [{}], {"kwargs": {"result": {}}}),
        # a well-formed result for a chunk, with invented counters and another's name
        ("battletracker.store_results", [{**chunk, "v": 1, "node": "celery@someone-else"}], {}),
    ]  # fmt: skip
    for name, args, kw in attacks:
        publish(url, name, args, **kw)
    deadline = time.monotonic() + 60
    while rig.query("SELECT count(*) FROM result_rejections")[0][0] < len(attacks):
        assert time.monotonic() < deadline, rig.query("SELECT reason FROM result_rejections")
        time.sleep(0.2)
    reasons = dict(rig.query("SELECT reason, count(*) FROM result_rejections GROUP BY reason"))
    assert reasons == {"not_store_task": 5, "bad_envelope": 4, "unsigned": 1}
    time.sleep(1.0)  # anything the guard let through would have run by now
    assert _state(rig) == before, "no cycle created, no chunk changed"
    assert server.proc.poll() is None, "the server worker keeps running"
    assert queue_depths(rig.broker)["store"][1] >= 1, "and keeps consuming store"
    log = "".join(p.read_text() for p in rig.logs.glob("server-*.log"))
    assert "forged CRITICAL line" not in log.replace("refused message", "")

    # -- the night still ends exact -------------------------------------------------------
    node.stop()
    rig.worker("fetch", "fetch", rig.volunteer_env)
    rig.wait_done()
    rig.assert_players_match_truth(1)
    assert rig.query("SELECT count(*) FROM cycles")[0][0] == 1
