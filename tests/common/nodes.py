"""Nodes for integration tests, enrolled the way a volunteer does it: invite, register, lease.

The server side (the web app in a thread) and the operator commands run on the test's
database and vhost; node broker users are made through RabbitMQ's management API and
removed when the test ends.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from battletracker.bench.nodes import Enrolment, management_url, remove_broker_users
from battletracker.settings import Settings
from battletracker.web.secret import new_secret_key
from battletracker.web.server import serve_in_thread


def node_server_env(db: Settings, broker: str, prefix: str, lease_seconds: int = 300
                    ) -> dict[str, str]:  # fmt: skip
    """What the operator's server processes are told (also the web app's settings)."""
    return {
        "BATTLETRACKER_BROKER_URL": broker,
        "BATTLETRACKER_DATABASE_URL": db.database_url,
        "BATTLETRACKER_BROKER_ADMIN_URL": management_url(),
        "BATTLETRACKER_NODE_USER_PREFIX": prefix,
        "BATTLETRACKER_LEASE_SECONDS": str(lease_seconds),
        # the web app refuses short or placeholder keys (issue 15b)
        "BATTLETRACKER_SECRET_KEY": new_secret_key(),
    }


def settings_from(env: dict[str, str]) -> Settings:
    from battletracker.settings import load_settings

    return load_settings(environ=env)


class NodeServer(Enrolment):
    """The web app serving the node API on the test's database, and node enrolment."""


@contextmanager
def node_server(db: Settings, broker: str, root: Path, lease_seconds: int = 300
                ) -> Iterator[NodeServer]:  # fmt: skip
    prefix = f"bt-test-{uuid.uuid4().hex[:6]}-"
    env = node_server_env(db, broker, prefix, lease_seconds)
    web = serve_in_thread(settings_from(env))
    try:
        yield NodeServer(env, root, web)
    finally:
        web.stop()
        remove_broker_users(prefix)


EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def task_message(
    name: str, args: list[Any], *, kwargs: dict[str, Any] | None = None,
    embed: dict[str, Any] | None = None, **headers: Any,
) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """A Celery protocol 2 message (body, headers), as any AMQP client can forge one."""
    task_id = str(uuid.uuid4())
    base = {"lang": "py", "task": name, "id": task_id, "root_id": task_id, "parent_id": None,
            "group": None, "retries": 0, "timelimit": [None, None], "eta": None,
            "expires": None, "argsrepr": "", "kwargsrepr": "", "origin": "test"}  # fmt: skip
    return json.dumps([args, kwargs or {}, embed or EMBED]), {**base, **headers}


def publish(broker_url: str, name: str, args: list[Any], *, exchange: str = "bt.results",
            routing_key: str = "store", **kw: Any) -> None:  # fmt: skip
    """Publish one task message with ``broker_url``'s credentials; a refusal raises."""
    import kombu

    body, headers = task_message(name, args, **kw)
    with kombu.Connection(broker_url, connect_timeout=5,
                          transport_options={"confirm_publish": True}) as conn:  # fmt: skip
        conn.Producer().publish(
            body, exchange=exchange, routing_key=routing_key, headers=headers,
            content_type="application/json", content_encoding="utf-8", declare=[],
        )  # fmt: skip


class HandNode:
    """A node driven by hand: takes ``fetch`` messages with its own broker user, signs
    results with its lease, publishes them like its worker would (or not quite)."""

    def __init__(self, server: NodeServer, name: str) -> None:
        from battletracker.volunteer.api import ServerApi
        from battletracker.volunteer.identity import load_identity
        from battletracker.volunteer.lease import LeaseKeeper

        self.directory = server.enrol(name)
        identity = load_identity(self.directory)
        self.keeper = LeaseKeeper(self.directory, identity, ServerApi(identity.server, identity))
        self.keeper.start()
        lease = self.keeper.lease
        assert lease is not None
        self.node_id = identity.node_id
        self.broker_url = str(lease["broker_url"])

    def take(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        """``n`` fetch messages' chunk arguments (acked: this node now holds them)."""
        import time

        import kombu

        out: list[dict[str, Any]] = []
        with kombu.Connection(self.broker_url, connect_timeout=5) as conn:
            queue = kombu.Queue("fetch", no_declare=True)

            def on_message(body: Any, message: Any) -> None:
                if len(out) >= n:  # prefetched one too many: hand it back
                    message.requeue()
                    return
                args = body[0] if isinstance(body, list) else json.loads(body)[0]
                out.append(args[0])
                message.ack()

            with conn.Consumer([queue], callbacks=[on_message], accept=["json"], prefetch_count=1):
                deadline = time.monotonic() + timeout
                while len(out) < n and time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=1)
                    except TimeoutError:
                        continue
        assert len(out) == n, f"took {len(out)} of {n} fetch messages"
        return out

    def sign(self, result: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
        return self.keeper.sign(result, chunk)

    def send(self, result: dict[str, Any], **kw: Any) -> None:
        publish(self.broker_url, "battletracker.store_results", [result], **kw)

    def stop(self) -> None:
        self.keeper.stop()


def fetch_results(sim: Any, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fetch ``chunks`` from the simulator in-process, as an honest node would."""
    import asyncio

    from battletracker.pipeline.fetch import KeySlot, fetch_chunk
    from battletracker.pipeline.result import ChunkSpec
    from battletracker.wargaming.client import WargamingClient
    from battletracker.wargaming.ratelimit import NoLimit
    from battletracker.wargaming.simulator import BASE_URL

    async def run() -> list[dict[str, Any]]:
        key = next(iter(sim.keys))
        client = WargamingClient(BASE_URL, key, transport=sim.transport())
        slot = KeySlot(client, NoLimit(), concurrency=4)
        try:
            return [(await fetch_chunk(ChunkSpec.from_message(c), [slot], node="x")).to_message()
                    for c in chunks]  # fmt: skip
        finally:
            await client.aclose()

    return asyncio.run(run())
