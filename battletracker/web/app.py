"""The app factory: ``create_app(settings)`` wires the API, pages, auth and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client.registry import Collector

from ..db import sessionmaker_for
from ..nodes.metrics import NodeCollector
from ..settings import Settings
from . import explorer, feed, login, operator_pages, ops, pages, reports
from .api import nodes as nodes_api
from .api import releases
from .api import router as api_router
from .asyncdb import AsyncReader
from .auth import SessionCodec
from .deps import State, gate
from .errors import install_handlers
from .hardening import BodyLimitMiddleware, PeerMiddleware, SecurityHeadersMiddleware
from .metrics import MetricsMiddleware, build_registry
from .pagecache import PageCache, PageCacheMiddleware
from .passwords import PasswordChecker
from .secret import check_secret_key
from .sessions import SessionStore
from .throttle import LoginThrottle

__all__ = ["create_app"]

STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """\
Nightly counts of World of Tanks console accounts: cycle progress, daily activity per
platform, leaderboards, player stats and history, nickname search, volunteer credit.

Errors are JSON objects with a `detail` member: 404 for unknown players or boards, 422
for bad parameters, 401 when the operator has turned the guest login on.
"""


def create_app(settings: Settings, *, extra_collectors: Iterable[Collector] = (),
               wg_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the web app for ``settings``.

    Arguments:
        settings: database, secret key (refused when it is a default or short: see
            :mod:`.secret`), logins, the Wargaming sign-in and the hardening settings.
        extra_collectors: more Prometheus collectors for ``/metrics`` (the pipeline's
            queue depth, for instance); registered on this app's own registry, and
            their readings cached for a few seconds.
        wg_transport: an httpx transport for the sign-in check (tests: the simulator
            in-process); default: the network.

    Raises:
        InsecureSecretKey: ``settings.secret_key`` would let anyone forge sessions.
    """
    check_secret_key(settings.secret_key)
    sessions = sessionmaker_for(settings)
    passwords = PasswordChecker(settings.operators)
    reader = AsyncReader(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        passwords.close()
        await reader.close()

    app = FastAPI(
        title="battletracker",
        version="1",
        description=DESCRIPTION,
        # FastAPI's own explorer pages load from a CDN: ours serves vendored Swagger UI
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(gate)],
        lifespan=lifespan,
    )
    app.state.bt = State(
        settings=settings,
        sessions=sessions,
        codec=SessionCodec(settings.secret_key, max_age=settings.session_max_age),
        store=SessionStore(sessions, max_age=settings.session_max_age),
        throttle=LoginThrottle.for_workers(
            per_address=settings.login_failures_per_address,
            per_account=settings.login_failures_per_account,
            window=settings.login_lockout_seconds, workers=settings.web_workers),
        passwords=passwords,
        reader=reader,
    )
    app.state.wg_transport = wg_transport
    registry, http_metrics = build_registry(sessions, [NodeCollector(sessions), *extra_collectors])
    app.state.registry = registry
    install_handlers(app)
    app.include_router(api_router)
    app.include_router(explorer.router)
    # nodes ask for their version before they hold any login (a public prefix)
    app.include_router(releases.router)
    app.include_router(nodes_api.router)  # node auth of its own (issue 12)
    app.include_router(nodes_api.public_router)
    app.include_router(ops.router)
    app.include_router(operator_pages.router)
    app.include_router(login.router)
    app.include_router(reports.router)
    app.include_router(feed.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.page_cache = PageCache(reader.boards_version)
    # inside the metrics and the security headers: a refusal is counted and hardened alike
    app.add_middleware(BodyLimitMiddleware)
    # inside the metrics and the security headers: a hit is counted and hardened alike
    app.add_middleware(PageCacheMiddleware, cache=app.state.page_cache,
                       enabled=lambda: not settings.guest_login)
    app.add_middleware(MetricsMiddleware, metrics=http_metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(PeerMiddleware, trusted=settings.web_trusted_proxies)
    return app
