"""Server-side web sessions: logout and a removed operator end a session for good.

The browser's cookie holds a random token signed with ``secret_key``; the table
``web_sessions`` holds only the token's SHA-256 and who it belongs to. Each request
with a cookie costs one primary-key lookup, and an operator's session is accepted only
while that operator is still configured with the same password hash (checked on every
request against the settings, through :func:`operator_fingerprint`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ..models import WebSession
from .auth import ANONYMOUS, Identity

__all__ = ["SessionStore", "operator_fingerprint"]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def operator_fingerprint(operators: tuple[tuple[str, str], ...], name: str,
                         secret_key: str) -> str | None:
    """A digest of ``name``'s configured password hash; None when ``name`` is no operator.

    Keyed with ``secret_key`` so that the table never holds anything derived from a
    password hash that could be tested offline.
    """
    stored = dict(operators).get(name)
    if stored is None:
        return None
    return hmac.new(secret_key.encode(), f"{name}\0{stored}".encode(),
                    hashlib.sha256).hexdigest()


class SessionStore:
    """Creates, reads and ends web sessions in ``web_sessions``."""

    def __init__(self, sessions: sessionmaker[Session], *, max_age: int) -> None:
        self._sessions = sessions
        self.max_age = max_age

    def create(self, identity: Identity, *, fingerprint: str | None,
               replaces: str | None = None) -> str:
        """Store a session for ``identity``; returns the new token for the cookie.

        ``replaces`` (the visitor's old token) is ended in the same transaction: each
        login gets a fresh token, so a token planted before the login is worth nothing.
        Expired sessions are purged here too (logins are rare, requests are not).
        """
        token = secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.UTC)
        with self._sessions.begin() as session:
            session.execute(delete(WebSession).where(WebSession.expires_at < now))
            if replaces:
                session.execute(delete(WebSession).where(
                    WebSession.token_hash == _hash(replaces)))
            session.add(WebSession(
                token_hash=_hash(token), operator=identity.operator,
                operator_fingerprint=fingerprint if identity.operator else None,
                guest=identity.guest, account_id=identity.account_id,
                nickname=identity.nickname,
                expires_at=now + dt.timedelta(seconds=self.max_age)))
        return token

    def load(self, token: str, *, operators: tuple[tuple[str, str], ...],
             secret_key: str) -> Identity:
        """The identity of a live session; anonymous when unknown, expired or revoked.

        An operator session whose operator was removed, or whose password changed,
        since the login is refused whole.
        """
        with self._sessions() as session:
            row = session.scalars(select(WebSession).where(
                WebSession.token_hash == _hash(token))).first()
        if row is None or row.expires_at <= dt.datetime.now(dt.UTC):
            return ANONYMOUS
        if row.operator is not None:
            current = operator_fingerprint(operators, row.operator, secret_key)
            if current is None or not hmac.compare_digest(
                    current, row.operator_fingerprint or ""):
                return ANONYMOUS
        return Identity(operator=row.operator, guest=row.guest,
                        account_id=row.account_id, nickname=row.nickname)

    def end(self, token: str) -> None:
        """End one session (logout)."""
        with self._sessions.begin() as session:
            session.execute(delete(WebSession).where(WebSession.token_hash == _hash(token)))
