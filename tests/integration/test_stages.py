"""Nights and stages through real Celery workers on RabbitMQ and PostgreSQL.

- a night whose fetch workers are gone is closed as partial when the next night is due;
  every account's play is still counted once, and a retry of the closed night is refused;
- a stage failing for good (diffs, boards) marks the cycle failed, visible in ``cycle
  status`` and the workers' ``/metrics``; ``cycle retry`` resumes it; a lost stage is
  re-sent by the reaper;
- a soft time limit hit by a stage is recovered (sent again with a longer limit);
- HTTP 403 answered by a proxy in front of the API is retried.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from battletracker.app import app, configure
from battletracker.db import engine_for
from battletracker.settings import Settings, load_settings
from battletracker.testing.databases import temporary_database
from battletracker.wargaming.simulator import PS_MIN, XBOX_MIN, Population, Simulator, serve
from tests.common.rig import Rig
from tests.common.services import BIN, Worker, rabbit_vhost, run_cli
from tests.integration.test_nights import assert_counted_once, players_now, truth

pytestmark = pytest.mark.integration

IDS, NEW = 600, 20
SPAN = IDS + NEW * 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Env(Rig):
    """The rig (database, vhost, simulator over HTTP, enrolled nodes) with this module's
    ranges, and helpers to run nights and read what the server shows."""

    def __init__(self, db: Settings, broker: str, sim: Simulator, api_url: str, logs: Path):
        super().__init__(db, broker, sim, api_url, logs)
        self.pop = sim.population
        self.metrics_port = _free_port()
        self.server_env.update({
            "BATTLETRACKER_XBOX_RANGE": f"{XBOX_MIN}-{XBOX_MIN + SPAN}",
            "BATTLETRACKER_PS_RANGE": f"{PS_MIN}-{PS_MIN + SPAN}",
            "BATTLETRACKER_GROWTH_MARGIN": "0",
            "BATTLETRACKER_STALE_AFTER_SECONDS": "10",
        })  # fmt: skip

    def volunteer(self, name: str, keys: str = "k:40", api_url: str | None = None
                  ) -> dict[str, str]:  # fmt: skip
        """A node enrolled by invite, fetching with its own ``keys``."""
        directory = self.nodes.enrol(name)
        return self.nodes.node_env(directory, api_url or self.api_url, own_keys=keys)

    def server(self, **env: str) -> Worker:  # type: ignore[override]
        return self.worker("server", "store,control", {
            **self.server_env, "BATTLETRACKER_WORKER_METRICS_PORT": str(self.metrics_port),
            **env}, concurrency=2)  # fmt: skip

    def query(self, sql: str, **params: Any) -> list[Any]:  # type: ignore[override]
        with engine_for(self.db).connect() as conn:
            return list(conn.execute(text(sql), params).all())

    def sql(self, sql: str) -> None:
        with engine_for(self.db).begin() as conn:
            conn.execute(text(sql))

    def wait(self, what: str, predicate: Any, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.3)
        raise TimeoutError(f"{what}: {self.query('SELECT date, status FROM cycles')}")

    def status(self, day: int) -> str:
        rows = self.query("SELECT status FROM cycles WHERE date = :d", d=self.pop.date_of(day))
        return rows[0][0] if rows else ""

    def night(self, day: int, wait: bool = True) -> None:
        self.sim.day = day
        args = ["cycle", "start", "--date", self.pop.date_of(day).isoformat()]
        if wait:
            args += ["--wait", "--timeout", "240"]
        run_cli(*args, env=self.server_env)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "battletracker"), *args],
                              env={**os.environ, **self.server_env}, capture_output=True,
                              text=True, timeout=120)  # fmt: skip

    def server_metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for port in (self.metrics_port, self.metrics_port + 1):
            body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            for line in body.splitlines():
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    out[name] = out.get(name, 0.0) + float(value)
        return out

    def send(self, task: str, *args: Any) -> None:
        configure(load_settings(environ={"BATTLETRACKER_BROKER_URL": self.broker}))
        app.send_task(task, args=args)

    def log(self, name: str) -> str:
        return "".join(p.read_text() for p in self.logs.glob(f"{name}-*.log"))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    pop = Population(seed=41, xbox_ids=IDS, ps_ids=IDS, new_per_day=NEW, active_share=0.5)
    sim = Simulator(pop, keys={"k": 40.0, "slow": 3.0})
    with temporary_database(Settings()) as db, rabbit_vhost() as broker, serve(sim) as api:
        e = Env(db, broker, sim, api.url, tmp_path)
        try:
            yield e
        finally:
            e.stop()


def test_a_night_whose_fetchers_are_gone_is_closed_when_the_next_is_due(env: Env) -> None:
    env.server()
    fetcher = env.worker("fetch", "fetch", env.volunteer_env)
    env.night(1)
    fetcher.stop()
    # night 2: a slow volunteer stores a chunk or two, then it is gone for good
    slow = env.worker("slow", "fetch", env.volunteer("slow", keys="slow:3"))
    env.night(2, wait=False)
    env.wait("a chunk of night 2 stored", lambda: env.query(
        "SELECT count(*) FROM chunks k JOIN cycles c ON c.id = k.cycle_id "
        "WHERE c.date = :d AND k.status = 'stored'", d=env.pop.date_of(2))[0][0] > 0)  # fmt: skip
    slow.kill()
    # night 3 is due: night 2 is closed as partial, diffed, and night 3 runs
    env.night(3, wait=False)
    env.worker("fetch2", "fetch", env.volunteer("fetch2"))
    env.wait("every night done", lambda: [r[0] for r in env.query(
        "SELECT status FROM cycles ORDER BY date")] == ["done"] * 3, timeout=240)  # fmt: skip
    [(partial, missed)] = env.query(
        "SELECT partial, (SELECT count(*) FROM chunks WHERE cycle_id = c.id "
        "AND status = 'missed') FROM cycles c WHERE date = :d", d=env.pop.date_of(2))
    assert partial and missed > 0
    assert_counted_once(env.db, env.pop, 1, 3)
    assert players_now(env.db) == {i: c for i, c in truth(env.pop, 3).items() if any(c)}
    status = json.loads(run_cli("cycle", "status", "--json", "--date",
                                env.pop.date_of(2).isoformat(), env=env.server_env))  # fmt: skip
    assert status["partial"]["missed_chunks"] == missed
    refused = env.cli("cycle", "retry", "--date", env.pop.date_of(2).isoformat())
    assert refused.returncode != 0
    assert "cannot be retried" in refused.stderr and "closed as partial" in refused.stderr
    # night 2's messages fetched after it was closed came back late and were not stored
    env.wait("late results seen", lambda: "came back after its night was closed"
             in env.log("server"), timeout=60)  # fmt: skip


_FAIL_TRIGGER = """
CREATE OR REPLACE FUNCTION bt_test_fail() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'forced failure of %', TG_TABLE_NAME; END $$;
CREATE TRIGGER bt_test_fail BEFORE INSERT ON {table}
FOR EACH ROW EXECUTE FUNCTION bt_test_fail();
"""


def test_failed_stages_are_marked_visible_and_resumed(env: Env) -> None:
    env.server()
    env.worker("fetch", "fetch", env.volunteer_env)
    env.night(1)
    cases = [(2, "diff_battles", "diffing"), (3, "daily_activity", "materialising")]
    for n, table, stage in cases:
        env.sql(_FAIL_TRIGGER.format(table=table))
        env.night(n, wait=False)
        env.wait(f"night {n} failed", lambda n=n: env.status(n) == "failed")
        [(failed_stage, error)] = env.query("SELECT failed_stage, error FROM cycles "
                                            "WHERE date = :d", d=env.pop.date_of(n))  # fmt: skip
        assert failed_stage == stage and f"forced failure of {table}" in error
        shown = run_cli("cycle", "status", "--date", env.pop.date_of(n).isoformat(),
                        env=env.server_env)  # fmt: skip
        assert f"FAILED   in {stage}" in shown and "cycle retry" in shown
        assert env.server_metrics()[f'battletracker_stage_failures_total{{stage="{stage}"}}'] == 1
        env.sql(f"DROP TRIGGER bt_test_fail ON {table}")
        out = run_cli("cycle", "retry", "--date", env.pop.date_of(n).isoformat(),
                      env=env.server_env)  # fmt: skip
        assert f"stage {stage} sent again" in out
        env.wait(f"night {n} done", lambda n=n: env.status(n) == "done")
    assert_counted_once(env.db, env.pop, 1, 3)
    # a stage whose message was lost (before it recorded its pieces) is re-sent by the
    # reaper (lost pieces: tests/integration/stats/test_board_pieces.py)
    built = env.query("SELECT max(built_at) FROM leaderboard_builds")[0][0]
    night3 = "(SELECT id FROM cycles WHERE date = '" + env.pop.date_of(3).isoformat() + "')"
    env.sql(f"DELETE FROM board_builds WHERE cycle_id = {night3}")
    env.sql("UPDATE cycles SET status = 'materialising', "
            f"status_changed_at = now() - interval '1 hour' WHERE id = {night3}")
    env.send("battletracker.reap_stale")
    env.wait("boards rebuilt by the reaper", lambda: env.status(3) == "done")
    assert env.query("SELECT max(built_at) FROM leaderboard_builds")[0][0] > built


def test_a_soft_time_limit_is_recovered(env: Env) -> None:
    env.server(BATTLETRACKER_STAGE_SOFT_TIME_LIMIT="5")
    env.worker("fetch", "fetch", env.volunteer_env)
    env.night(1)
    # compute_diffs of night 2 blocks on players for longer than its soft limit
    with engine_for(env.db).connect() as holder:
        holder.execute(text("LOCK TABLE players IN ACCESS EXCLUSIVE MODE"))
        env.night(2, wait=False)
        env.wait("the soft limit hit", lambda: "battletracker.compute_diffs: soft time limit "
                 "of 5 s hit" in env.log("server"), timeout=180)  # fmt: skip
        holder.rollback()
    env.wait("night 2 done after all", lambda: env.status(2) == "done", timeout=300)
    assert "battletracker.compute_diffs: soft time limit of 5 s hit; sent again with 10 s" in (
        env.log("server"))
    assert_counted_once(env.db, env.pop, 1, 2)
    sample = 'battletracker_task_runs_total{outcome="soft_time_limit",task="compute_diffs"}'
    assert env.server_metrics()[sample] >= 1


class _Proxy(ThreadingHTTPServer):
    """A proxy in front of the API that answers the first ``refuse`` requests with 403."""

    def __init__(self, upstream: str, refuse: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream, self.refuse, self.refused, self.passed = upstream, refuse, 0, 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/wotx/"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _Proxy

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            refuse = self.server.refused < self.server.refuse
            self.server.refused += refuse
            self.server.passed += not refuse
        if refuse:
            page = b"<html><body>403 Forbidden (proxy)</body></html>"
            self.send_response(403)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        path = self.path.removeprefix("/wotx/")
        reply = httpx.post(self.server.upstream + path, content=body,
                           headers={"Content-Type": self.headers["Content-Type"]})  # fmt: skip
        self.send_response(reply.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.content)))
        self.end_headers()
        self.wfile.write(reply.content)


def test_http_403_from_a_proxy_is_retried(env: Env) -> None:
    proxy = _Proxy(env.api_url, refuse=3)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        env.server()
        env.worker("fetch", "fetch", env.volunteer("proxied", api_url=proxy.url))
        env.night(1)
    finally:
        proxy.shutdown()
    assert proxy.refused == 3 and proxy.passed > 0
    assert players_now(env.db) == {i: c for i, c in truth(env.pop, 1).items() if any(c)}
    assert env.query("SELECT count(*) FROM chunks WHERE status <> 'stored'") == [(0,)]
    assert "HTTP 403" in env.log("fetch")


def test_a_night_beat_missed_is_started_once_when_beat_returns(env: Env) -> None:
    """Beat was down at cycle_time (5 minutes ago): its catch-up entry starts it, once."""
    import datetime as dt

    from battletracker.pipeline.coordinator import cycle_date_for
    from battletracker.pipeline.tasks import start_due_cycle

    due = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    settings = load_settings(environ={**env.server_env,
                                      "BATTLETRACKER_CYCLE_TIME": f"{due:%H:%M}"})  # fmt: skip
    configure(settings)
    first = start_due_cycle.run()
    assert first is not None and first["created"] and first["published"] > 0
    assert start_due_cycle.run() is None  # once
    night = cycle_date_for(due.replace(second=0, microsecond=0), settings)
    assert env.query("SELECT date, status FROM cycles") == [(night, "fetching")]
