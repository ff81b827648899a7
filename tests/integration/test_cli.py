"""The ``battletracker`` command as an operator uses it, in subprocesses."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from battletracker.db import engine_for
from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database
from battletracker.wargaming.simulator import PS_MIN, XBOX_MIN, Population
from tests.common.services import BIN, run_cli

pytestmark = pytest.mark.integration


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "battletracker"), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)  # fmt: skip


def test_help_lists_the_commands() -> None:
    out = _cli("--help").stdout
    for command in ("db", "cycle", "simulator", "demo", "web", "stats", "config"):
        assert command in out


def test_a_bad_setting_is_a_clear_usage_error() -> None:
    done = _cli("config", "show", env={"BATTLETRACKER_CHUNK_SIZE": "150"})
    assert done.returncode == 2
    assert "chunk_size" in done.stderr and "multiple of 100" in done.stderr


def test_config_show_masks_secrets() -> None:
    done = _cli("config", "show", env={
        "BATTLETRACKER_DATABASE_URL": "postgresql://bt:hunter2@db/bt",
        "BATTLETRACKER_WG_KEYS": "abcdef123:20"})  # fmt: skip
    assert done.returncode == 0
    assert "hunter2" not in done.stdout and "abcdef123" not in done.stdout
    assert "postgresql://bt:***@db/bt" in done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_simulator_command_then_cycle_run_over_http() -> None:
    port = _free_port()
    sim = subprocess.Popen(
        [str(BIN / "battletracker"), "simulator", "--port", str(port), "--seed", "4",
         "--xbox-ids", "800", "--ps-ids", "600", "--new-per-day", "0", "--day", "1",
         "--keys", "op:50"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/wotx/"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "account/info/", params={"application_id": "op",
                          "account_id": "5000"}, timeout=1)  # fmt: skip
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.1)
        with temporary_database(Settings()) as db:
            env = {
                "BATTLETRACKER_DATABASE_URL": db.database_url,
                "BATTLETRACKER_WG_API_URL": url,
                "BATTLETRACKER_WG_KEYS": "op:50",
                "BATTLETRACKER_CHUNK_SIZE": "500",
                "BATTLETRACKER_XBOX_RANGE": f"{XBOX_MIN}-{XBOX_MIN + 999}",
                "BATTLETRACKER_PS_RANGE": f"{PS_MIN}-{PS_MIN + 999}",
            }
            out = run_cli("cycle", "run", "--date", "2026-01-02", env=env)
            summary = json.loads(out.strip().splitlines()[-1])
            assert summary["status"] == "done"
            population = Population(seed=4, xbox_ids=800, ps_ids=600, new_per_day=0)
            truth = sum(1 for _ in population.truth(1))
            with engine_for(db).connect() as conn:
                players = conn.execute(text("SELECT count(*) FROM players")).scalar_one()
            assert players == summary["accounts"] == truth
            status = run_cli("cycle", "status", env=env)
            assert "done" in status and "chunks   4/4" in status
            stats = httpx.get(f"http://127.0.0.1:{port}/_sim/stats").json()
            assert stats["outcomes"].get("limit", 0) == 0, "the token bucket kept to 50 rps"
    finally:
        sim.terminate()
        sim.wait(10)


#: Runs ``battletracker demo ARGS`` in a process that then names the threads still alive,
#: as the demo's dashboard would find them: no node's lease keeper may outlive the crawl.
_DEMO_THEN_THREADS = """
import sys, threading
from battletracker.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("threads:", sorted(t.name for t in threading.enumerate()))
"""


def test_demo_runs_and_summarises(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "python"), "-c", _DEMO_THEN_THREADS, "demo", "--players", "600",
         "--days", "2", "--no-serve", "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "threads:" in out and "lease-keeper" not in out, out
    assert "2 nights in" in out
    assert "players: ps" in out and "xbox" in out
    assert "range xbox" in out and "grew to" in out
    assert (tmp_path / "demo" / "pgdata").is_dir()


def test_cycle_retry_hands_failed_chunks_out_again() -> None:
    from battletracker.db import session_scope
    from battletracker.pipeline.coordinator import create_cycle
    from battletracker.pipeline.queues import queue_depths
    from tests.common.services import rabbit_vhost

    with temporary_database(Settings(chunk_size=1000)) as db, rabbit_vhost() as broker:
        with session_scope(db) as session:
            create_cycle(session, db, dt.date(2026, 1, 2))
        with engine_for(db).begin() as conn:
            first_two = "SELECT id FROM chunks ORDER BY id LIMIT 2"
            conn.execute(text(f"UPDATE chunks SET status = 'failed', attempts = 5 "
                              f"WHERE id IN ({first_two})"))  # fmt: skip
        env = {"BATTLETRACKER_DATABASE_URL": db.database_url, "BATTLETRACKER_BROKER_URL": broker,
               "BATTLETRACKER_CHUNK_SIZE": "1000"}  # fmt: skip
        assert "2 failed chunks handed out again" in run_cli("cycle", "retry", env=env)
        with engine_for(db).connect() as conn:
            rows = conn.execute(text("SELECT status, attempts FROM chunks ORDER BY id LIMIT 3"))
            # attempts never go back (a token of attempt 1..5 stays stale): 6th attempt
            assert [tuple(r) for r in rows] == [("dispatched", 6), ("dispatched", 6),
                                                 ("pending", 0)]  # fmt: skip
        assert queue_depths(broker)["fetch"][0] == 2
