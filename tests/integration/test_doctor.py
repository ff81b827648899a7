"""``battletracker doctor`` on a healthy installation and on broken ones: real PostgreSQL,
RabbitMQ with a real server worker, the API simulator over HTTP, the Elasticsearch stand-in."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from battletracker.admin.doctor import _clock, check_disk
from battletracker.cli import main
from battletracker.db import engine_for
from battletracker.migrate import upgrade_and_grant
from battletracker.settings import Settings
from battletracker.supported import ELASTICSEARCH_MAJOR
from battletracker.testing.databases import temporary_database
from battletracker.testing.elastic_standin import start_standin
from battletracker.wargaming.simulator import Population, Simulator, serve
from tests.common.services import BIN, Worker, rabbit_vhost

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A whole healthy installation; yields its BATTLETRACKER_* environment."""
    log = tmp_path_factory.mktemp("doctor") / "worker.log"
    base = Settings(db_web_password="w-pass", db_worker_password="k-pass")
    sim = Simulator(Population(seed=3, xbox_ids=100, ps_ids=100), keys={"doctorkey": 50.0})
    with temporary_database(base) as settings, rabbit_vhost() as broker, \
            serve(sim) as api, start_standin() as es:
        upgrade_and_grant(settings)
        env = {"BATTLETRACKER_DATABASE_URL": settings.database_url,
               "BATTLETRACKER_BROKER_URL": broker,
               "BATTLETRACKER_WG_API_URL": api.url,
               "BATTLETRACKER_WG_KEYS": "doctorkey:10",
               "BATTLETRACKER_ELASTICSEARCH_URL": es.url}
        worker = Worker("doctor", "store,control,fetch", env, log)
        try:
            worker.wait_ready()
            yield env
        finally:
            worker.stop()


def doctor(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["doctor", "--json", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_a_healthy_installation_passes_every_check(install: dict[str, str]) -> None:
    code, report = doctor(install)

    checks = by_name(report)
    assert code == 0 and report["ok"], report
    assert {c["status"] for c in report["checks"]} == {"ok"}, report
    assert set(checks) >= {"database", "migrations", "role battletracker_web",
                           "role battletracker_worker", "clock", "broker", "queue fetch",
                           "queue store", "queue control", "key doct…", "elasticsearch",
                           "disk"}
    assert checks["elasticsearch"]["detail"].startswith(f"server {ELASTICSEARCH_MAJOR}.")
    assert "1 consumer" in checks["queue store"]["detail"]


def test_the_text_output_says_everything_looks_fine(install: dict[str, str]) -> None:
    done = subprocess.run([str(BIN / "battletracker"), "doctor"], env={**install, "PATH": ""},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("everything looks fine")


def test_database_down_broker_down_and_a_wrong_elasticsearch_major_are_each_named(
    install: dict[str, str]
) -> None:
    with start_standin(major=ELASTICSEARCH_MAJOR + 1) as wrong:
        env = {**install,
               "BATTLETRACKER_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/battletracker",
               "BATTLETRACKER_BROKER_URL": "amqp://guest:secret@127.0.0.1:1//",
               "BATTLETRACKER_ELASTICSEARCH_URL": wrong.url}
        code, report = doctor(env)
        text_run = CliRunner().invoke(main, ["doctor"], env=env)

    checks = by_name(report)
    assert code == 1 and not report["ok"]
    assert checks["database"]["status"] == "error"
    assert "cannot connect" in checks["database"]["detail"]
    assert "start PostgreSQL" in checks["database"]["fix"]
    assert checks["broker"]["status"] == "error"
    assert "start RabbitMQ" in checks["broker"]["fix"]
    assert "secret" not in json.dumps(report)
    assert checks["elasticsearch"]["status"] == "error"
    assert f"server {ELASTICSEARCH_MAJOR + 1}.1.0" in checks["elasticsearch"]["detail"]
    assert f"speaks {ELASTICSEARCH_MAJOR}.x" in checks["elasticsearch"]["fix"]
    assert checks["clock"]["status"] == "skipped"
    assert checks["key doct…"]["status"] == "ok"  # what works is still reported
    assert text_run.exit_code == 1
    assert "FAIL database" in text_run.output and "3 problem(s)" in text_run.output


def test_a_dead_key_of_the_nodes_pool_is_named(install: dict[str, str]) -> None:
    settings = Settings(database_url=install["BATTLETRACKER_DATABASE_URL"])
    with engine_for(settings).begin() as conn:
        conn.execute(text("INSERT INTO api_keys (app_id, rps, state) VALUES "
                          "('poolgood', 10, 'disabled'), ('pooldead', 10, 'active')"))
    try:
        code, report = doctor({**install, "BATTLETRACKER_WG_KEYS": ""},
                              "--skip", "elasticsearch", "--skip", "broker")
    finally:
        with engine_for(settings).begin() as conn:
            conn.execute(text("DELETE FROM api_keys"))
    checks = by_name(report)
    assert code == 1
    assert [n for n in checks if n.startswith("key ")] == ["key pool…"]  # active keys only
    assert checks["key pool…"]["status"] == "error"
    assert checks["key pool…"]["detail"].startswith("pool: refused: INVALID_APPLICATION_ID")
    assert "battletracker keys disable" in checks["key pool…"]["fix"]


def test_an_unmigrated_database_and_a_dead_key_are_named(install: dict[str, str]) -> None:
    with temporary_database(Settings(), migrate=False) as empty:
        env = {**install, "BATTLETRACKER_DATABASE_URL": empty.database_url,
               "BATTLETRACKER_WG_KEYS": "doctorkey:10,unknownkey:5"}
        code, report = doctor(env, "--skip", "elasticsearch")
    checks = by_name(report)
    assert code == 1
    assert checks["migrations"]["status"] == "error"
    assert checks["migrations"]["fix"].startswith("run 'battletracker db upgrade'")
    assert checks["key unkn…"]["status"] == "error"
    assert "INVALID_APPLICATION_ID" in checks["key unkn…"]["detail"]
    assert checks["elasticsearch"]["status"] == "skipped"


def test_a_stopped_server_worker_and_a_writing_web_role_are_named(
    install: dict[str, str], tmp_path: Path
) -> None:
    settings = Settings(database_url=install["BATTLETRACKER_DATABASE_URL"])
    with engine_for(settings).begin() as conn:
        conn.execute(text("GRANT UPDATE ON players TO battletracker_web"))
    try:
        with rabbit_vhost() as idle_broker:  # no worker consumes here
            code, report = doctor({**install, "BATTLETRACKER_BROKER_URL": idle_broker},
                                  "--skip", "keys")
    finally:
        with engine_for(settings).begin() as conn:
            conn.execute(text("REVOKE UPDATE ON players FROM battletracker_web"))
    checks = by_name(report)
    assert code == 1
    assert checks["queue store"]["status"] == "error"
    assert "server worker is not running" in checks["queue store"]["detail"]
    assert checks["queue fetch"]["status"] == "warning"
    assert "must only read" in checks["role battletracker_web"]["detail"]


def test_clock_skew_and_a_full_disk_are_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _clock(dt.datetime.now(dt.UTC)).status == "ok"
    skewed = _clock(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3))
    assert skewed.status == "error" and "time service" in (skewed.fix or "")

    import shutil

    class Usage:
        total, used, free = 100 * 2**30, 99.9 * 2**30, 2**27

    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage)
    (full,) = check_disk([Path(".")])
    assert full.status == "error" and "PostgreSQL stops writing" in (full.fix or "")
