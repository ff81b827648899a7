"""Passwords and sessions: PBKDF2-SHA256 hashes and signed, expiring session cookies.

No I/O here: the login routes (:mod:`battletracker.web.login`) and the access
dependencies (:mod:`battletracker.web.deps`) call these functions.

A password hash reads ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (base64 salt and hash,
no ``,`` or ``:`` so it fits the ``operators`` setting). The iteration count travels with
the hash, so raising :data:`DEFAULT_ITERATIONS` later does not invalidate old hashes.

The session cookie carries a random token signed with ``secret_key`` (itsdangerous,
timestamped): it cannot be forged or extended, and it expires ``session_max_age``
seconds after it was issued. Who the token belongs to lives server-side
(:mod:`battletracker.web.sessions`), so that logging out really ends it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = [
    "ANONYMOUS",
    "DEFAULT_ITERATIONS",
    "SESSION_COOKIE",
    "Identity",
    "SessionCodec",
    "check_operator",
    "hash_password",
    "verify_password",
]

ALGORITHM = "pbkdf2_sha256"
#: OWASP's 2023 figure for PBKDF2-HMAC-SHA256: ~0.3 s per login on a small server.
DEFAULT_ITERATIONS = 600_000
SESSION_COOKIE = "bt_session"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, iterations: int = DEFAULT_ITERATIONS,
                  salt: bytes | None = None) -> str:
    """A salted PBKDF2-SHA256 hash of ``password`` for the ``operators`` setting."""
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{ALGORITHM}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; a malformed hash never matches."""
    try:
        algorithm, iter_text, salt_text, hash_text = encoded.split("$")
        iterations = int(iter_text)
        salt, expected = _unb64(salt_text), _unb64(hash_text)
    except ValueError:
        return False
    if algorithm != ALGORITHM or not 1 <= iterations <= 10_000_000:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(digest, expected)


#: Verified against when the user name is unknown, so that the answer takes as long as
#: for a known user (no user enumeration by timing).
_DUMMY_HASH = hash_password("", iterations=DEFAULT_ITERATIONS, salt=b"\0" * 16)


def check_operator(operators: tuple[tuple[str, str], ...], user: str, password: str) -> bool:
    """Whether ``user``/``password`` is one of the configured operators."""
    stored = dict(operators).get(user)
    if stored is None:
        verify_password(password, _DUMMY_HASH)
        return False
    return verify_password(password, stored)


@dataclass(frozen=True)
class Identity:
    """Who the session says the visitor is. Several roles can be held at once."""

    #: Operator user name, when logged in as an operator.
    operator: str | None = None
    #: Passed the shared guest login.
    guest: bool = False
    #: Signed in with Wargaming: the player's account id and nickname.
    account_id: int | None = None
    nickname: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.operator is not None

    @property
    def is_player(self) -> bool:
        return self.account_id is not None

    @property
    def may_read(self) -> bool:
        """Passes the guest gate: any kind of login."""
        return self.guest or self.is_operator or self.is_player


ANONYMOUS = Identity()


class SessionCodec:
    """Signs session tokens into cookie values and reads them back, rejecting old ones."""

    def __init__(self, secret_key: str, *, max_age: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="battletracker.session")
        self.max_age = max_age

    def dumps(self, token: str) -> str:
        return self._serializer.dumps(token)

    def loads(self, value: str | None) -> str | None:
        """The token in ``value``; None when missing, forged, expired or not a token."""
        if not value or len(value) > 512:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except BadSignature:  # includes SignatureExpired
            return None
        return data if isinstance(data, str) and 16 <= len(data) <= 128 else None
