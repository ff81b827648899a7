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
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from .services import management_url

__all__ = ["Enrolment", "management_url", "run_cli"]

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


class Enrolment:
    """The node API (the web app in a thread) on the server's settings, and enrolment."""

    def __init__(self, server_env: Mapping[str, str], root: Path) -> None:
        from ..settings import load_settings
        from ..web.server import serve_in_thread

        self.env = dict(server_env)
        self.root = root
        self.web = serve_in_thread(load_settings(environ=self.env))

    def add_key(self, app_id: str, rps: float) -> None:
        run_cli("keys", "add", app_id, "--rps", f"{rps:g}", env=self.env)

    def enrol(self, name: str) -> Path:
        """``nodes invite`` + ``node register``: the node's directory."""
        directory = self.root / f"node-{name}-{uuid.uuid4().hex[:4]}"
        code = run_cli("nodes", "invite", "--name", name, env=self.env).strip()
        run_cli(
            "node",
            "register",
            "--server",
            self.web.url,
            "--name",
            name,
            "--dir",
            str(directory),
            "--invite",
            code,
            env={},
        )
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

    def stop(self, prefix: str) -> None:
        self.web.stop()
        parts = urlsplit(management_url())
        base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api/"
        auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        with httpx.Client(base_url=base, auth=auth, timeout=10) as client:
            for user in client.get("users").json():
                if user["name"].startswith(prefix):
                    client.delete(f"users/{quote(user['name'], safe='')}")
