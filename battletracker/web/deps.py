"""Request-scoped dependencies: the database session, the visitor's identity, access gates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from ..settings import Settings
from .auth import SESSION_COOKIE, Identity, SessionCodec

__all__ = [
    "DbSession",
    "LoginRequired",
    "OperatorRequired",
    "Reader",
    "State",
    "get_identity",
    "get_session",
    "operator",
    "reader",
    "state_of",
]


@dataclass
class State:
    """What the app factory built once; stored on ``app.state.bt``."""

    settings: Settings
    sessions: sessionmaker[Session]
    codec: SessionCodec


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


def get_identity(request: Request) -> Identity:
    return state_of(request).codec.loads(request.cookies.get(SESSION_COOKIE))


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


def operator(request: Request) -> Identity:
    identity = get_identity(request)
    if not identity.is_operator:
        raise LoginRequired(operator=True)
    return identity


Reader = Annotated[Identity, Depends(reader)]
OperatorRequired = Annotated[Identity, Depends(operator)]
