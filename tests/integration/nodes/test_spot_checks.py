"""Spot checks and trust: a node that inflates counters is caught, quarantined, redone.

The cheating node takes ten chunks with its own broker user, fetches them honestly,
adds battles to every account, signs and sends. The server re-fetches a slice of half
the results (``spot_check_fraction`` 0.5, and every result of a node once it lost
trust) with its own key; two disagreements take the node below the threshold: it is
quarantined, its stored chunks leave staging and go to an honest worker, and the night
ends with every account exact. The operator and the public see the trust.
"""

from __future__ import annotations

import copy
import time

import httpx
import pytest

from tests.common.nodes import HandNode, fetch_results
from tests.common.rig import Rig
from tests.common.services import run_cli

pytestmark = pytest.mark.integration


def test_a_node_that_inflates_counters_is_caught_and_its_chunks_refetched(rig: Rig) -> None:
    rig.server_env.update({
        "BATTLETRACKER_SPOT_CHECK_FRACTION": "0.5",
        "BATTLETRACKER_WG_KEYS": "k:40",  # the server's own key, for spot checks
        "BATTLETRACKER_WG_API_URL": rig.api_url,
    })  # fmt: skip
    rig.server()
    run_cli("cycle", "start", "--date", "2026-01-02", env=rig.server_env)
    cheater = HandNode(rig.nodes, "cheater")
    chunks = cheater.take(10)
    for chunk, result in zip(chunks, fetch_results(rig.sim, chunks), strict=True):
        inflated = copy.deepcopy(result)
        for row in inflated["rows"]:
            row[4] += 7  # battles
        cheater.send(cheater.sign(inflated, chunk))
    deadline = time.monotonic() + 60
    while rig.query("SELECT state FROM nodes WHERE name = 'cheater'") != [("quarantined",)]:
        assert time.monotonic() < deadline, rig.query("SELECT * FROM nodes")
        time.sleep(0.3)
    cheater.stop()

    rig.worker("honest", "fetch", rig.volunteer_env)
    rig.wait_done(timeout=180)
    rig.assert_players_match_truth(1)  # nothing of the cheater's is left in the night

    nodes = {n["name"]: n for n in rig.nodes.nodes()}
    bad = nodes["cheater"]
    assert bad["state"] == "quarantined" and bad["trust"] < 0.5
    assert bad["spot_failures"] >= 2 and "spot check" in bad["note"]
    assert bad["chunks_stored"] == 0, "credit of re-issued chunks is taken back"
    assert nodes["volunteer"]["trust"] == 1.0
    assert nodes["volunteer"]["chunks_stored"] == rig.query("SELECT chunks_total FROM cycles")[0][0]
    reasons = dict(rig.query("SELECT reason, count(*) FROM result_rejections GROUP BY reason"))
    assert reasons.get("spot_check", 0) >= 2
    assert rig.query("SELECT count(*) FROM chunk_nodes c JOIN nodes n ON n.id = c.node_id "
                     "WHERE n.name = 'cheater'") == [(0,)]  # fmt: skip
    public = httpx.get(rig.nodes.url + "/api/v1/volunteers", timeout=10).json()
    by_name = {v["name"]: v for v in public}
    assert by_name["cheater"]["trust"] < 0.5 and by_name["volunteer"]["trust"] == 1.0
    assert set(public[0]) == {"name", "chunks", "accounts", "trust", "state"}  # no hostnames
    page = httpx.get(rig.nodes.url + "/volunteers", timeout=10).text
    assert "<td>volunteer</td>" in page and '<td class="num">1.0</td>' in page
    assert "cheater" not in page, "no credit left for re-issued chunks"
