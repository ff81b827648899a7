"""Volunteer nodes enrolled the way a volunteer does it: invite, register, lease.

The benchmarks' fetch workers are real nodes: the web app serves the node API on the
benchmark's database, ``battletracker keys add`` puts the key in the pool,
``nodes invite`` + ``node register`` + ``node lease`` give each node its identity, its
own broker user and its share of the key; results are signed, and the store verifies
them. Node broker users are removed through RabbitMQ's management API afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from .services import management_url

if TYPE_CHECKING:
    from ..web.server import ServerHandle

__all__ = ["Enrolment", "management_url", "remove_broker_users", "run_cli"]

_BIN = Path(sys.executable).parent


def run_cli(*args: str, env: Mapping[str, str], timeout: float = 120) -> str:
    """Run the ``battletracker`` command; fail with its output if it fails."""
    done = subprocess.run(
        [str(_BIN / "battletracker"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"battletracker {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def remove_broker_users(prefix: str) -> None:
    """Delete the node broker users named ``prefix…`` through the management API."""
    parts = urlsplit(management_url())
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api/"
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    with httpx.Client(base_url=base, auth=auth, timeout=10) as client:
        for user in client.get("users").json():
            if user["name"].startswith(prefix):
                client.delete(f"users/{quote(user['name'], safe='')}")


class Enrolment:
    """The node API (the web app in a thread) on the server's settings, and enrolment."""

    def __init__(self, server_env: Mapping[str, str], root: Path,
                 web: ServerHandle | None = None) -> None:  # fmt: skip
        from ..settings import load_settings
        from ..web.server import serve_in_thread

        self.env = dict(server_env)
        self.root = root
        self.web = web or serve_in_thread(load_settings(environ=self.env))

    @property
    def url(self) -> str:
        return self.web.url

    def add_key(self, app_id: str, rps: float) -> None:
        run_cli("keys", "add", app_id, "--rps", f"{rps:g}", env=self.env)

    def enrol(self, name: str, *, invite: bool = True) -> Path:
        """``nodes invite`` + ``node register`` (without an invite: pending approval)."""
        directory = self.root / f"node-{name}-{uuid.uuid4().hex[:4]}"
        args = ["node", "register", "--server", self.url, "--name", name, "--dir", str(directory)]
        if invite:
            code = run_cli("nodes", "invite", "--name", name, env=self.env).strip()
            args += ["--invite", code]
        run_cli(*args, env={})
        return directory

    def lease(self, directory: Path) -> dict[str, Any]:
        """``node lease``: a new lease for the node (its previous one is revoked)."""
        lease: dict[str, Any] = json.loads(
            run_cli("node", "lease", "--dir", str(directory), "--json", env={})
        )
        return lease

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
        """``nodes list --json``."""
        out: list[dict[str, Any]] = json.loads(run_cli("nodes", "list", "--json", env=self.env))
        return out

    def stop(self, prefix: str) -> None:
        self.web.stop()
        remove_broker_users(prefix)
