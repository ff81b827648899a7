"""Two nights through real Celery workers on RabbitMQ into PostgreSQL, checked against truth.

A fetch worker (a volunteer: no database settings at all) and a store/control worker
(the server) run as ``celery -A battletracker worker`` processes; ``battletracker cycle
start`` starts each night; the simulator serves the API over loopback HTTP.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from battletracker.db import engine_for
from battletracker.models import COUNTERS
from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database
from battletracker.wargaming.simulator import PS_MIN, XBOX_MIN, Population, Simulator, serve
from tests.common.nodes import node_server
from tests.common.services import Worker, rabbit_vhost, run_cli

pytestmark = pytest.mark.integration

XBOX_IDS, PS_IDS, NEW_PER_DAY = 2500, 2000, 300
MARGIN, STEP = 400, 1000
# Xbox's initial bound is the population's top: the first night must grow it.
# PlayStation's lies far above its population: it must not grow.
XBOX_RANGE = (XBOX_MIN, XBOX_MIN + XBOX_IDS - 1)
PS_RANGE = (PS_MIN, PS_MIN + PS_IDS + 5 * STEP)


def _free_ports(n: int) -> int:
    """The first of ``n`` consecutive ports free on loopback now."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue


_BASE = _free_ports(3)
#: fetch worker, server worker (its two pool processes serve on port + 0 and + 1)
METRICS_PORTS = (_BASE, _BASE + 1)


@pytest.fixture(scope="module")
def night_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    population = Population(seed=11, xbox_ids=XBOX_IDS, ps_ids=PS_IDS, new_per_day=NEW_PER_DAY)
    sim = Simulator(population, keys={"vol-key": 150.0})
    logs = tmp_path_factory.mktemp("workers")
    with (
        temporary_database(Settings()) as db,
        rabbit_vhost() as broker,
        serve(sim) as api,
        node_server(db, broker, logs) as nodes,
    ):
        server = {
            **nodes.env,
            "BATTLETRACKER_CHUNK_SIZE": "500",
            "BATTLETRACKER_XBOX_RANGE": "{}-{}".format(*XBOX_RANGE),
            "BATTLETRACKER_PS_RANGE": "{}-{}".format(*PS_RANGE),
            "BATTLETRACKER_GROWTH_MARGIN": str(MARGIN),
            "BATTLETRACKER_GROWTH_STEP": str(STEP),
            "BATTLETRACKER_WORKER_METRICS_PORT": str(METRICS_PORTS[1]),
        }
        # the server declares the queues; the volunteer (enrolled by invite, its own
        # broker user, the operator's key leased) may declare nothing
        workers = [Worker("server", "store,control", server, logs / "server.log", concurrency=2)]
        try:
            workers[0].wait_ready()
            run_cli("keys", "add", "vol-key", "--rps", "150", env=server)
            volunteer = {
                **nodes.node_env(nodes.enrol("volunteer"), api.url),
                # a volunteer has no database: point it nowhere to prove it never needs one
                "BATTLETRACKER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                "BATTLETRACKER_WORKER_METRICS_PORT": str(METRICS_PORTS[0]),
            }
            workers.append(Worker("fetch", "fetch", volunteer, logs / "fetch.log"))
            workers[1].wait_ready()
            yield {"sim": sim, "pop": population, "db": db, "server": server,
                   "workers": workers, "logs": logs}  # fmt: skip
        finally:
            for w in workers:
                w.stop()


def _players(db: Settings) -> dict[int, tuple[Any, ...]]:
    cols = ", ".join(("nickname", "created_at", "last_battle_time", *COUNTERS))
    with engine_for(db).connect() as conn:
        rows = conn.execute(text(f"SELECT account_id, {cols} FROM players")).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def _truth(pop: Population, day: int, ranges: dict[str, tuple[int, int]]) -> dict[int, Any]:
    out = {}
    for account_id, acc in pop.truth(day):
        platform = "xbox" if account_id < PS_MIN else "ps"
        lo, hi = ranges[platform]
        if lo <= account_id <= hi:
            out[account_id] = acc
    return out


def _row(acc: dict[str, Any]) -> tuple[Any, ...]:
    stats = acc["statistics"]["all"]
    return (acc["nickname"], acc["created_at"], acc["last_battle_time"],
            *(stats[c] for c in COUNTERS))  # fmt: skip


def _ranges(db: Settings) -> dict[str, tuple[int, int]]:
    with engine_for(db).connect() as conn:
        rows = conn.execute(text("SELECT platform, min_id, max_id FROM platform_ranges")).all()
    return {p: (lo, hi) for p, lo, hi in rows}


def _night(env: dict[str, Any], day: int) -> tuple[dt.date, dict[str, tuple[int, int]]]:
    """Run the night of simulator ``day``; returns its date and the ranges it crawled."""
    env["sim"].day = day
    date = env["pop"].date_of(day)
    crawled = _ranges(env["db"]) if day > 1 else {"xbox": XBOX_RANGE, "ps": PS_RANGE}
    run_cli("cycle", "start", "--date", date.isoformat(), "--wait", "--timeout", "240",
            env=env["server"])  # fmt: skip
    return date, crawled


def test_two_nights_match_the_simulators_truth(night_env: dict[str, Any]) -> None:
    env, pop, db = night_env, night_env["pop"], night_env["db"]

    day1, crawled1 = _night(env, 1)
    truth1 = _truth(pop, 1, crawled1)
    players = _players(db)
    assert set(players) == set(truth1), "night 1: accounts missing or extra"
    assert all(players[i] == _row(a) for i, a in truth1.items()), "night 1: counters differ"
    grown = _ranges(db)
    assert grown["xbox"][1] == XBOX_RANGE[1] + STEP, "xbox reached the margin: must grow"
    assert grown["ps"] == PS_RANGE, "ps stayed far below its bound: must not grow"

    day2, crawled2 = _night(env, 2)
    assert crawled2["xbox"] == grown["xbox"]
    truth2 = _truth(pop, 2, crawled2)
    players = _players(db)
    assert set(players) == set(truth2), "night 2: accounts missing or extra"
    mismatched = [i for i, a in truth2.items() if players[i] != _row(a)]
    assert not mismatched, f"night 2: {len(mismatched)} accounts differ, e.g. {mismatched[:3]}"
    # accounts appended above night 1's bound were crawled on night 2 thanks to the growth
    assert any(i > XBOX_RANGE[1] for i in truth2 if i < PS_MIN)

    with engine_for(db).connect() as conn:
        query = f"SELECT account_id, {', '.join(COUNTERS)} FROM diff_battles WHERE date = :d"
        diffs = {r[0]: tuple(r[1:]) for r in conn.execute(text(query), {"d": day2})}
        totals = conn.execute(
            text("SELECT count(*) FROM total_battles WHERE date = :d"), {"d": day2}
        ).scalar_one()
        cycles = conn.execute(text("SELECT date, status, chunks_stored, chunks_total "
                                   "FROM cycles ORDER BY date")).all()  # fmt: skip
    expected = {}
    for i, acc in truth2.items():
        new = _row(acc)[3:]
        old = _row(truth1[i])[3:] if i in truth1 else None
        if old is None:
            if new[0] > 0:  # a brand-new account with battles counts whole
                expected[i] = new
        elif new != old:
            expected[i] = tuple(a - b for a, b in zip(new, old, strict=True))
    assert diffs == expected
    assert totals == len(expected)
    assert [(c[0], c[1]) for c in cycles] == [(day1, "done"), (day2, "done")]
    assert all(c[2] == c[3] for c in cycles)


def test_second_start_for_the_same_date_changes_nothing(night_env: dict[str, Any]) -> None:
    env = night_env
    date = env["pop"].date_of(1)
    before = _players(env["db"])
    with engine_for(env["db"]).connect() as conn:
        chunks_before = conn.execute(text("SELECT count(*) FROM chunks")).scalar_one()
    out = run_cli("cycle", "start", "--date", date.isoformat(), env=env["server"])
    assert '"created": false' in out
    with engine_for(env["db"]).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM chunks")).scalar_one() == chunks_before
    assert _players(env["db"]) == before


def test_status_reports_the_finished_cycle(night_env: dict[str, Any]) -> None:
    import json

    date = night_env["pop"].date_of(2)
    out = run_cli("cycle", "status", "--json", "--date", date.isoformat(),
                  env=night_env["server"])  # fmt: skip
    status = json.loads(out)
    assert status["status"] == "done"
    assert status["chunks_stored"] == status["chunks_total"] > 0
    assert status["ids_done"] == status["ids_total"]
    assert status["eta_seconds"] == 0


def test_volunteer_worker_never_opened_the_database(night_env: dict[str, Any]) -> None:
    log = Path(night_env["logs"] / "fetch.log").read_text()
    assert "battletracker.fetch_range" in log and "succeeded" in log
    assert "OperationalError" not in log and "nobody@" not in log


def _scrape(port: int) -> dict[str, float]:
    """Sample name (with labels) -> value from a worker's /metrics."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_workers_serve_prometheus_metrics(night_env: dict[str, Any]) -> None:
    with engine_for(night_env["db"]).connect() as conn:
        accounts = conn.execute(text("SELECT sum(accounts) FROM cycles")).scalar_one()
        ids = conn.execute(text("SELECT sum(ids_total) FROM cycles")).scalar_one()
    fetch = _scrape(METRICS_PORTS[0])  # the fetch worker's one pool process, index 0
    assert fetch["battletracker_accounts_fetched_total"] == accounts
    assert fetch["battletracker_ids_fetched_total"] == ids
    assert fetch['battletracker_api_requests_total{outcome="ok"}'] >= ids / 100
    assert fetch['battletracker_api_requests_total{outcome="limit_exceeded"}'] == 0
    assert fetch["battletracker_chunk_fetch_seconds_count"] > 0
    server: dict[str, float] = {}
    for port in (METRICS_PORTS[1], METRICS_PORTS[1] + 1):
        for name, value in _scrape(port).items():
            server[name] = server.get(name, 0) + value
    assert server["battletracker_store_rows_total"] == accounts
    assert server['battletracker_results_total{outcome="stored"}'] > 0
