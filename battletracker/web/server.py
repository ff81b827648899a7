"""Serving the app with uvicorn: in the foreground (``battletracker web``) or in a thread."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from ..pipeline.queues import QueueDepthCollector
from ..settings import Settings, load_settings
from .app import create_app

__all__ = ["ServerHandle", "serve", "serve_in_thread", "worker_app"]


def _config(settings: Settings, host: str, port: int, **kwargs: object) -> uvicorn.Config:
    app = create_app(settings, extra_collectors=[QueueDepthCollector(settings)])
    # proxy headers are applied by the app itself, from web_trusted_proxies only
    return uvicorn.Config(app, host=host, port=port,
                          proxy_headers=False, server_header=False, **kwargs)  # type: ignore[arg-type]


def serve(settings: Settings, host: str | None = None, port: int | None = None,
          *, config_path: str | None = None, access_log: bool = True) -> None:
    """Serve in the foreground until interrupted.

    With ``settings.web_workers`` > 1, uvicorn's supervisor runs that many processes on
    one socket; each builds its app from the same settings (:func:`worker_app`: the same
    config file and environment, passed down through ``$BATTLETRACKER_CONFIG``).
    """
    host = host or settings.web_host
    port = settings.web_port if port is None else port
    if settings.web_workers <= 1:
        uvicorn.Server(_config(settings, host, port, access_log=access_log)).run()
        return
    if config_path is not None:
        os.environ["BATTLETRACKER_CONFIG"] = str(Path(config_path).resolve())
    os.environ["BATTLETRACKER_WEB_WORKERS"] = str(settings.web_workers)
    seen = load_settings()  # what each worker will load
    if (seen.secret_key, seen.database_url) != (settings.secret_key, settings.database_url):
        raise RuntimeError("the worker processes would not load the same settings")
    uvicorn.run("battletracker.web.server:worker_app", factory=True, host=host, port=port,
                workers=settings.web_workers, proxy_headers=False, server_header=False,
                access_log=access_log)


def worker_app() -> FastAPI:
    """The app of one worker process (``--workers``): settings from config and env."""
    settings = load_settings()
    return create_app(settings, extra_collectors=[QueueDepthCollector(settings)])


@dataclass
class ServerHandle:
    """A server running in a background thread; ``url`` ends without a slash."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(settings: Settings, host: str = "127.0.0.1", port: int = 0,
                    *, timeout: float = 15.0) -> ServerHandle:
    """Start the app in a daemon thread and wait until it listens.

    ``port=0`` picks a free port; the chosen one is in ``handle.url``.
    """
    server = uvicorn.Server(_config(settings, host, port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="battletracker-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the web app did not start on {host}:{port}")
        time.sleep(0.02)
    sock = server.servers[0].sockets[0]
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return ServerHandle(url=f"http://{shown}:{bound_port}", server=server, thread=thread)
