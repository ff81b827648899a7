"""Leases on the simulator: nodes sharing a key stay within its budget as nodes come and go.

Three node workers (real ``celery worker`` processes with no key of their own) lease the
operator's key ``pool`` (20 requests/s at the simulator, which refuses any request over
that). Leases last 9 s and are renewed every 3 s. Asserted along one night:

- two nodes hold 10 rps each; the simulator never refuses a request (combined rate
  within budget) while they use most of it (65 % over 5 s);
- a third joins: after the renewals each holds a third;
- it goes silent (killed): when its lease expires its share returns to the other two;
- the key is disabled (a second key added): within one lease period no node uses it;
- the night ends with every account exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from battletracker.models import COUNTERS
from battletracker.nodes.services import SHARE_HOLD
from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database
from battletracker.wargaming.simulator import PS_MIN, XBOX_MIN, Population, Simulator, serve
from tests.common.rig import Rig
from tests.common.services import rabbit_vhost, run_cli

pytestmark = pytest.mark.integration

IDS = 30_000
BUDGET = 20.0
LEASE = 9


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    population = Population(seed=3, xbox_ids=IDS, ps_ids=IDS, new_per_day=0)
    sim = Simulator(population, keys={"pool": BUDGET, "pool2": BUDGET}, day=1)
    with temporary_database(Settings()) as db, rabbit_vhost() as broker, serve(sim) as api:
        r = Rig(db, broker, sim, api.url, tmp_path)
        r.server_env.update({
            "BATTLETRACKER_LEASE_SECONDS": str(LEASE),
            "BATTLETRACKER_CHUNK_SIZE": "1000",
            "BATTLETRACKER_XBOX_RANGE": f"{XBOX_MIN}-{XBOX_MIN + IDS - 1}",
            "BATTLETRACKER_PS_RANGE": f"{PS_MIN}-{PS_MIN + IDS - 1}",
        })  # fmt: skip
        try:
            yield r
        finally:
            r.stop()


def _shares(rig: Rig) -> list[float]:
    return sorted(float(r[0]) for r in rig.query(
        "SELECT s.rps FROM lease_shares s JOIN node_leases l ON l.id = s.lease_id "
        "JOIN api_keys k ON k.id = s.api_key_id "
        "WHERE l.revoked_at IS NULL AND l.expires_at > now() AND k.app_id = 'pool'"))  # fmt: skip


def _until(what: str, check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"{what} not within {timeout} s"
        time.sleep(0.25)
    return time.monotonic() - started


class Sampler:
    """Requests per key at the simulator, sampled every 0.5 s."""

    def __init__(self, sim: Simulator) -> None:
        self.sim, self.samples = sim, []  # type: ignore[var-annotated]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.samples.append((time.monotonic(), dict(self.sim.stats()["by_key"])))

    def rate(self, key: str, seconds: float) -> float:
        """Requests/s on ``key`` over the last ``seconds``."""
        now, last = self.samples[-1]
        then, first = next((t, s) for t, s in self.samples if t >= now - seconds)
        return (last.get(key, 0) - first.get(key, 0)) / max(now - then, 0.1)

    def stop(self) -> None:
        self._stop.set()


def test_nodes_share_a_key_within_its_budget_as_they_come_and_go(rig: Rig) -> None:
    run_cli("keys", "add", "pool", "--rps", str(BUDGET), env=rig.server_env)
    rig.server()
    names = ("a", "b", "c")
    envs = {n: rig.nodes.node_env(rig.nodes.enrol(n), rig.api_url) for n in names}
    a, b = (rig.worker(n, "fetch", envs[n]) for n in ("a", "b"))
    sampler = Sampler(rig.sim)
    run_cli("cycle", "start", "--date", "2026-01-02", env=rig.server_env)

    _until("two shares of 10", lambda: _shares(rig) == [10.0, 10.0], 3 * LEASE)
    # Most of the budget in use: one node alone cannot (its share is half, 12 rps over 5 s
    # even with a full burst), so both fetch at once. Waited for, not sampled once: a
    # worker may still be taking its new share, and a loaded machine takes a moment longer.
    _until("two nodes using most of the budget",
           lambda: sampler.rate("pool", 5) >= 0.65 * BUDGET, 2 * LEASE)  # fmt: skip

    c = rig.worker("c", "fetch", envs["c"])
    _until("three shares of a third", lambda: _shares(rig) == [6.666] * 3, 3 * LEASE)
    listed = {n["name"]: n["rps"] for n in rig.nodes.nodes()}
    assert listed == {"a": 6.666, "b": 6.666, "c": 6.666}

    c.kill()  # silent: no renewal from now on
    waited = _until("the silent node's share back", lambda: _shares(rig) == [10.0, 10.0],
                    3 * LEASE)  # fmt: skip
    assert waited <= LEASE + LEASE / 3 + 3 + SHARE_HOLD.total_seconds()

    run_cli("keys", "add", "pool2", "--rps", str(BUDGET), env=rig.server_env)
    run_cli("keys", "disable", "pool", env=rig.server_env)
    disabled_at = time.monotonic()
    time.sleep(LEASE + 1)  # one lease period: every node renewed without it, or expired
    used = rig.sim.stats()["by_key"].get("pool", 0)
    time.sleep(4)
    assert rig.sim.stats()["by_key"].get("pool", 0) == used, "a disabled key still in use"
    assert time.monotonic() - disabled_at < 2 * LEASE

    rig.wait_done(timeout=240)
    sampler.stop()
    outcomes = rig.sim.stats()["outcomes"]
    assert outcomes.get("limit", 0) == 0, f"the nodes together exceeded the budget: {outcomes}"
    assert a.proc.poll() is None and b.proc.poll() is None
    _assert_exact(rig)


def _assert_exact(rig: Rig) -> None:
    truth = dict(rig.sim.population.truth(1))
    cols = ", ".join(COUNTERS)
    rows = {r[0]: tuple(r[1:]) for r in rig.query(f"SELECT account_id, {cols} FROM players")}
    assert set(rows) == set(truth)
    for i, acc in truth.items():
        assert rows[i] == tuple(acc["statistics"]["all"][k] for k in COUNTERS), i
