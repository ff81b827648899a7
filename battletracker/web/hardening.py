"""HTTP hardening: security headers on every answer, trusted proxy headers, /metrics access,
a limit on request bodies.

Middlewares are pure ASGI (no response buffering). The Content-Security-Policy allows
scripts, styles and images from this origin only: the pages keep every script and style
in ``/static`` files, so no ``unsafe-inline`` is needed.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ..settings import Settings, parse_networks

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "MAX_BODY",
    "PEER_KEY",
    "SECURITY_HEADERS",
    "BodyLimitMiddleware",
    "PeerMiddleware",
    "SecurityHeadersMiddleware",
    "metrics_allowed",
]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # the Wargaming callback's URL carries an access token: never send URLs elsewhere
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)
#: One year, as browsers' preload lists ask; sent only on answers served over https.
HSTS = (b"strict-transport-security", b"max-age=31536000")
#: The scope key holding the address of the direct peer (before proxy headers).
PEER_KEY = "battletracker.peer"
_FORWARDING = ("x-forwarded-for", "x-forwarded-proto", "forwarded", "x-real-ip")
#: The largest request body read, in bytes (nginx's default ``client_max_body_size``):
#: every form and node request is a few kB.
MAX_BODY = 1 << 20

log = logging.getLogger(__name__)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit (an HTTPException, so
    that FastAPI's body parsing lets it through as a 413 instead of a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class BodyLimitMiddleware:
    """Answers 413 to a body over ``limit`` bytes: by its ``Content-Length`` before a byte
    is read, or, streamed without one, as soon as what was read passes the limit. Anyone
    may post to the node and login routes; none may make the app hold a large body."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:  # (h11 refuses a bad one)
            await self._refuse(scope, send)
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        log.warning("request body over %s bytes refused: %s %s from %s", self.limit,
                    scope.get("method"), scope.get("path"), scope.get(PEER_KEY))  # fmt: skip
        body = b'{"detail":"request body too large"}'
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` (and HSTS over https) unless a route set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [*SECURITY_HEADERS, HSTS] if https else SECURITY_HEADERS
                headers.extend(h for h in extra if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)


class PeerMiddleware:
    """Records the direct peer's address, then applies trusted proxy headers.

    Only proxies in ``web_trusted_proxies`` may set the client address and scheme
    (``X-Forwarded-For``/``-Proto``); with none configured the headers are ignored.
    """

    def __init__(self, app: ASGIApp, trusted: str) -> None:
        self.app = app
        self.inner: Any = (ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]
                           if trusted.strip() else app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            scope[PEER_KEY] = client[0] if client else None
        await self.inner(scope, receive, send)


def _in(address: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
        ) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def metrics_allowed(request: Request, settings: Settings) -> bool:
    """``/metrics`` answers the bearer of ``metrics_token``, or a direct connection from
    ``metrics_networks``. A request that came through a proxy (forwarding headers) is
    never "internal": behind a reverse proxy on the same host every visitor would
    otherwise look like 127.0.0.1."""
    token = settings.metrics_token
    auth = request.headers.get("authorization", "")
    if token and auth.startswith("Bearer ") and hmac.compare_digest(
            auth[7:].strip().encode(), token.encode()):
        return True
    if any(h in request.headers for h in _FORWARDING):
        return False
    return _in(request.scope.get(PEER_KEY), parse_networks(settings.metrics_networks))
