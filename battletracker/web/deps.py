"""Request-scoped dependencies: the database session, the visitor's identity, access gates.

The guest gate (:func:`gate`) is a dependency of the whole app, not of each router: a
route added later is gated unless its path is listed in :data:`PUBLIC_PATHS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from ..settings import Settings
from .asyncdb import AsyncReader
from .auth import ANONYMOUS, SESSION_COOKIE, Identity, SessionCodec
from .passwords import PasswordChecker
from .sessions import SessionStore
from .throttle import LoginThrottle

__all__ = [
    "PUBLIC_PATHS",
    "PUBLIC_PREFIXES",
    "AsyncDb",
    "DbSession",
    "LoginRequired",
    "OperatorRequired",
    "Reader",
    "State",
    "gate",
    "get_identity",
    "get_reader",
    "get_session",
    "identity_of",
    "operator",
    "reader",
    "session_token",
    "state_of",
]

#: Routes anyone may reach with the guest gate on: logging in, and the monitoring
#: endpoints (``/metrics`` has its own token). Everything else is data, and gated.
PUBLIC_PATHS = frozenset({
    "/login", "/logout", "/auth/wargaming", "/auth/wargaming/callback",
    "/healthz", "/metrics",
})
#: Route prefixes of the volunteer nodes' own API: nodes authenticate with their own
#: credentials (issue 12's bearer token), never with a browser's guest login.
PUBLIC_PREFIXES = ("/api/v1/nodes/", "/api/v1/node/")


@dataclass
class State:
    """What the app factory built once; stored on ``app.state.bt``."""

    settings: Settings
    sessions: sessionmaker[Session]
    codec: SessionCodec
    store: SessionStore
    throttle: LoginThrottle
    passwords: PasswordChecker
    reader: AsyncReader


def state_of(request: Request) -> State:
    state: State = request.app.state.bt
    return state


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, closed afterwards (read-only: nothing is committed).

    Endpoints that use it are sync, so FastAPI runs them in its threadpool.
    """
    with state_of(request).sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session)]


def get_reader(request: Request) -> AsyncReader:
    """The async lookups of the hot routes (:mod:`.asyncdb`)."""
    return state_of(request).reader


AsyncDb = Annotated[AsyncReader, Depends(get_reader)]


def session_token(request: Request) -> str | None:
    """The token of the visitor's session cookie, if it is genuine and not expired."""
    return state_of(request).codec.loads(request.cookies.get(SESSION_COOKIE))


def get_identity(request: Request) -> Identity:
    """Who the visitor is, read once per request from the server-side session.

    Does a database read when a cookie is present: call it from sync code (the
    threadpool), or through ``run_in_threadpool`` from async routes.
    """
    cached = getattr(request.state, "identity", None)
    if isinstance(cached, Identity):
        return cached
    state = state_of(request)
    token = session_token(request)
    identity = ANONYMOUS if token is None else state.store.load(
        token, operators=state.settings.operators, secret_key=state.settings.secret_key)
    request.state.identity = identity
    return identity


async def identity_of(request: Request) -> Identity:
    """:func:`get_identity` for async routes: the threadpool only when a cookie is held."""
    cached = getattr(request.state, "identity", None)
    if isinstance(cached, Identity):
        return cached
    if session_token(request) is None:
        request.state.identity = ANONYMOUS
        return ANONYMOUS
    identity: Identity = await run_in_threadpool(get_identity, request)
    return identity


class LoginRequired(Exception):
    """The visitor must log in first (guest gate on, or an operator page)."""

    def __init__(self, *, operator: bool) -> None:
        super().__init__("operator login required" if operator else "login required")
        self.operator = operator


def reader(request: Request) -> Identity:
    """Passes anyone when the guest login is off, else any logged-in visitor."""
    identity = get_identity(request)
    if state_of(request).settings.guest_login and not identity.may_read:
        raise LoginRequired(operator=False)
    return identity


async def gate(request: Request) -> None:
    """The app-wide guest gate: :func:`reader` for every route but :data:`PUBLIC_PATHS`.

    Async, so that an anonymous reader costs no trip through the threadpool: the
    database is read (in the threadpool) only when the guest login is on and the
    visitor holds a genuine session cookie.
    """
    # the path the router matched (not a route's own template, which lacks any prefix
    # given to include_router: "/login" inside a prefixed router is not the login page)
    path: str = request.scope["path"]
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return
    if not state_of(request).settings.guest_login:
        return
    if session_token(request) is None:
        request.state.identity = ANONYMOUS
        raise LoginRequired(operator=False)
    await run_in_threadpool(reader, request)


def operator(request: Request) -> Identity:
    identity = get_identity(request)
    if not identity.is_operator:
        raise LoginRequired(operator=True)
    return identity


Reader = Annotated[Identity, Depends(reader)]
OperatorRequired = Annotated[Identity, Depends(operator)]
