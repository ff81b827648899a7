"""``battletracker web --workers N``: N server processes answer on one port, each built
from the same settings as the command line's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database
from battletracker.web.secret import new_secret_key

BIN = Path(sys.executable).parent / "battletracker"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_workers_serve_the_app() -> None:
    with temporary_database(Settings()) as settings:
        port = _port()
        env = {**os.environ, "BATTLETRACKER_DATABASE_URL": settings.database_url,
               "BATTLETRACKER_SECRET_KEY": new_secret_key()}
        server = subprocess.Popen(
            [str(BIN), "web", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
             "--no-access-log"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).is_success:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "battletracker web --workers 2 never came up"
                time.sleep(0.3)
            children = psutil.Process(server.pid).children(recursive=True)
            workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
            assert len(workers) == 2, [c.cmdline() for c in children]
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(10):  # whichever process answers: the same app
                    r = client.get("/api/v1/boards/battles")
                    assert r.status_code == 200 and r.json()["total"] == 0
                    assert r.headers["x-frame-options"] == "DENY"
                assert client.get("/api/v1/boards/battles?limit=0").status_code == 422
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
