"""The app factory: ``create_app(settings)`` wires the API, pages, auth and metrics."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client.registry import Collector

from ..db import sessionmaker_for
from ..nodes.metrics import NodeCollector
from ..settings import Settings
from . import login, operator_pages, ops, pages
from .api import nodes as nodes_api
from .api import releases
from .api import router as api_router
from .auth import SessionCodec
from .deps import State, reader
from .errors import install_handlers
from .metrics import MetricsMiddleware, build_registry

__all__ = ["create_app"]

STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """\
Nightly counts of World of Tanks console accounts: cycle progress, daily activity per
platform, leaderboards, player stats and history, volunteer credit.

Errors are JSON objects with a `detail` member: 404 for unknown players or boards, 422
for bad parameters, 401 when the operator has turned the guest login on.
"""


def create_app(settings: Settings, *, extra_collectors: Iterable[Collector] = ()) -> FastAPI:
    """Build the web app for ``settings``.

    Arguments:
        settings: database, secret key, logins (``guest_login``, ``operators``,
            ``session_max_age``) and the Wargaming sign-in URL.
        extra_collectors: more Prometheus collectors for ``/metrics`` (the pipeline's
            queue depth, for instance); they are registered on this app's own registry.
    """
    app = FastAPI(
        title="battletracker",
        version="1",
        description=DESCRIPTION,
        # FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN: off, so that
        # nothing the app serves needs the internet. The schema is at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    sessions = sessionmaker_for(settings)
    app.state.bt = State(
        settings=settings,
        sessions=sessions,
        codec=SessionCodec(settings.secret_key, max_age=settings.session_max_age),
    )
    registry, http_metrics = build_registry(sessions, [NodeCollector(sessions), *extra_collectors])
    app.state.registry = registry
    install_handlers(app)
    app.include_router(api_router, dependencies=[Depends(reader)])
    # nodes ask for their version before they hold any login: outside the guest gate
    app.include_router(releases.router)
    app.include_router(nodes_api.router)  # node auth of its own (issue 12)
    app.include_router(nodes_api.public_router)
    app.include_router(ops.router)
    app.include_router(operator_pages.router)
    app.include_router(login.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(MetricsMiddleware, metrics=http_metrics)
    return app
