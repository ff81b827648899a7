"""A test rig: one database, RabbitMQ vhost and simulator, and worker processes on them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from battletracker.db import engine_for
from battletracker.models import COUNTERS
from battletracker.settings import Settings
from battletracker.wargaming.simulator import PS_MIN, XBOX_MIN, Simulator
from battletracker.web.server import serve_in_thread
from tests.common.nodes import NodeServer, node_server_env, remove_broker_users, settings_from
from tests.common.services import Worker

IDS = 1500


class Rig:
    """One database, vhost, simulator, and the worker processes a test asks for."""

    def __init__(self, db: Settings, broker: str, sim: Simulator, api_url: str, logs: Path):
        self.db, self.broker, self.sim, self.api_url, self.logs = db, broker, sim, api_url, logs
        self.workers: list[Worker] = []
        self.prefix = f"bt-test-{uuid.uuid4().hex[:6]}-"
        self.server_env = {
            **node_server_env(db, broker, self.prefix),
            "BATTLETRACKER_CHUNK_SIZE": "300",
            "BATTLETRACKER_XBOX_RANGE": f"{XBOX_MIN}-{XBOX_MIN + IDS - 1}",
            "BATTLETRACKER_PS_RANGE": f"{PS_MIN}-{PS_MIN + IDS - 1}",
        }
        self._nodes: NodeServer | None = None
        self._volunteer_env: dict[str, str] | None = None

    @property
    def nodes(self) -> NodeServer:
        """The web app serving the node API (started on first use)."""
        if self._nodes is None:
            web = serve_in_thread(settings_from(self.server_env))
            self._nodes = NodeServer(self.server_env, self.logs, web)
        return self._nodes

    @property
    def volunteer_env(self) -> dict[str, str]:
        """A volunteer's worker environment: enrolled by invite, its own broker user and
        signing lease, the volunteer's own key ``k``; no database."""
        if self._volunteer_env is None:
            directory = self.nodes.enrol("volunteer")
            self._volunteer_env = self.nodes.node_env(directory, self.api_url, own_keys="k:40")
        return self._volunteer_env

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        if self._nodes is not None:
            self._nodes.web.stop()
        remove_broker_users(self.prefix)

    def worker(self, name: str, queues: str, env: dict[str, str], **kw: Any) -> Worker:
        w = Worker(name, queues, env, self.logs / f"{name}-{len(self.workers)}.log", **kw)
        self.workers.append(w)
        w.wait_ready()
        return w

    def server(self, **kw: Any) -> Worker:
        return self.worker("server", "store,control", self.server_env, **kw)

    def query(self, sql: str, **params: Any) -> Any:
        with engine_for(self.db).connect() as conn:
            return conn.execute(text(sql), params).all()

    def wait_done(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.query("SELECT status FROM cycles")
            if rows and all(r[0] == "done" for r in rows):
                return
            time.sleep(0.3)
        state = self.query("SELECT status, chunks_stored FROM cycles")
        raise TimeoutError(f"cycle not done: {state}")

    def assert_players_match_truth(self, day: int) -> None:
        truth = {i: a for i, a in self.sim.population.truth(day)
                 if XBOX_MIN <= i < XBOX_MIN + IDS or PS_MIN <= i < PS_MIN + IDS}  # fmt: skip
        cols = ", ".join(COUNTERS)
        rows = {r[0]: tuple(r[1:]) for r in self.query(f"SELECT account_id, {cols} FROM players")}
        assert set(rows) == set(truth)
        for i, acc in truth.items():
            assert rows[i] == tuple(acc["statistics"]["all"][c] for c in COUNTERS), i
