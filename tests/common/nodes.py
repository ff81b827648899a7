"""Nodes for integration tests, enrolled the way a volunteer does it: invite, register, lease.

The server side (the web app in a thread) and the operator commands run on the test's
database and vhost; node broker users are made through RabbitMQ's management API and
removed when the test ends.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from battletracker.settings import Settings
from battletracker.web.secret import new_secret_key
from battletracker.web.server import ServerHandle, serve_in_thread
from tests.common.services import run_cli

MANAGEMENT_ENV = "BATTLETRACKER_TEST_BROKER_ADMIN_URL"
DEFAULT_MANAGEMENT = "http://guest:guest@127.0.0.1:15672"


def management_url() -> str:
    return os.environ.get(MANAGEMENT_ENV, DEFAULT_MANAGEMENT)


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


def remove_broker_users(prefix: str) -> None:
    parts = urlsplit(management_url())
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api/"
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    with httpx.Client(base_url=base, auth=auth, timeout=10) as client:
        for user in client.get("users").json():
            if user["name"].startswith(prefix):
                client.delete(f"users/{quote(user['name'], safe='')}")


class NodeServer:
    """The web app serving the node API on the test's database, and node enrolment."""

    def __init__(self, env: dict[str, str], web: ServerHandle, root: Path) -> None:
        self.env, self.web, self.root = env, web, root

    @property
    def url(self) -> str:
        return self.web.url

    def enrol(self, name: str, *, invite: bool = True) -> Path:
        """``nodes invite`` + ``node register``: the node's directory."""
        directory = self.root / f"node-{name}-{uuid.uuid4().hex[:4]}"
        args = ["node", "register", "--server", self.url, "--name", name, "--dir", str(directory)]
        if invite:
            code = run_cli("nodes", "invite", "--name", name, env=self.env).strip()
            args += ["--invite", code]
        run_cli(*args, env={})
        return directory

    def lease(self, directory: Path) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(
            run_cli("node", "lease", "--dir", str(directory), "--json", env={})
        )
        return out

    def node_env(self, directory: Path, api_url: str, own_keys: str = "") -> dict[str, str]:
        """A node's worker environment: its lease's broker URL, its directory, no database."""
        lease = self.lease(directory)
        return {
            "BATTLETRACKER_BROKER_URL": lease["broker_url"],
            "BATTLETRACKER_NODE_DIR": str(directory),
            "BATTLETRACKER_WG_API_URL": api_url,
            "BATTLETRACKER_WG_KEYS": own_keys,
            "BATTLETRACKER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        }

    def nodes(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = json.loads(run_cli("nodes", "list", "--json", env=self.env))
        return out


@contextmanager
def node_server(db: Settings, broker: str, root: Path, lease_seconds: int = 300
                ) -> Iterator[NodeServer]:  # fmt: skip
    prefix = f"bt-test-{uuid.uuid4().hex[:6]}-"
    env = node_server_env(db, broker, prefix, lease_seconds)
    web = serve_in_thread(settings_from(env))
    try:
        yield NodeServer(env, web, root)
    finally:
        web.stop()
        remove_broker_users(prefix)
