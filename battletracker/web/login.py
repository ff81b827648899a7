"""Logins: operators and the shared guest (``/login``), players via Wargaming, logout.

Sessions live server-side (:mod:`.sessions`); the cookie holds a signed random token and
is HttpOnly, SameSite=Lax (a cross-site form cannot log anyone in or out with it),
``Secure`` when the request came over https (directly, or through a proxy listed in
``web_trusted_proxies``), and expires after ``session_max_age``. Logout deletes the
session, so a copied cookie is worthless afterwards.

Password logins are throttled per client address and per user name
(:mod:`.throttle`) and hashed off the event loop on an executor of their own
(:mod:`.passwords`), so a burst of guesses neither gets through nor slows the pages.

Wargaming sign-in is the ``auth/login/`` redirect flow with a ``state`` nonce, and the
token it returns is verified with the API before anyone is signed in (:mod:`.wgsignin`).
"""

from __future__ import annotations

import math
import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool

from .auth import SESSION_COOKIE, Identity
from .deps import get_identity, session_token, state_of
from .passwords import PasswordCheckerBusy
from .sessions import operator_fingerprint
from .templating import render
from .throttle import Attempt
from .wgsignin import SignInRefused, SignInUnavailable, verify_token

__all__ = ["router", "safe_next"]

router = APIRouter(include_in_schema=False)

FLOW_COOKIE = "bt_wg_flow"
FLOW_MAX_AGE = 600


def safe_next(target: str | None) -> str:
    """Only local paths: ``next=https://evil`` or ``//evil`` becomes ``/``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _start_session(request: Request, response: Response, identity: Identity) -> Response:
    """Store a new session for ``identity`` (ending the visitor's old one) and set it."""
    state = state_of(request)
    settings = state.settings
    fingerprint = (operator_fingerprint(settings.operators, identity.operator,
                                        settings.secret_key)
                   if identity.operator else None)
    token = state.store.create(identity, fingerprint=fingerprint,
                               replaces=session_token(request))
    response.set_cookie(
        SESSION_COOKIE, state.codec.dumps(token), max_age=settings.session_max_age,
        httponly=True, samesite="lax", secure=_secure(request), path="/")
    return response


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
def login_form(request: Request, next: str = "/", operator: int = 0) -> Response:
    return render(request, "login.html",
                  {"next": safe_next(next), "operator": bool(operator), "error": None})


def _refused(request: Request, target: str, message: str, status: int,
             retry_after: float | None = None) -> Response:
    response = render(request, "login.html",
                      {"next": target, "operator": True, "error": message},
                      status_code=status)
    if retry_after is not None:
        response.headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    return response


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=128)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    """Operator names first (hashed passwords), then the shared guest, if turned on."""
    state = state_of(request)
    settings = state.settings
    target = safe_next(next)
    identity = await run_in_threadpool(get_identity, request)
    attempt = state.throttle.begin(_client_address(request), username or "guest")
    if not isinstance(attempt, Attempt):
        return _refused(request, target, "Too many failed logins: try again later.", 429,
                        retry_after=attempt)
    is_guest = settings.guest_login and username in ("", "guest") and secrets.compare_digest(
        password.encode(), settings.guest_password.encode())
    new: Identity | None = None
    if is_guest:
        new = Identity(operator=identity.operator, guest=True,
                       account_id=identity.account_id, nickname=identity.nickname)
    elif username and username != "guest":
        try:
            ok = await state.passwords.check(username, password)
        except PasswordCheckerBusy:
            return _refused(request, target, "Too many logins at once: try again shortly.",
                            503, retry_after=2)
        if ok:
            new = Identity(operator=username, guest=identity.guest,
                           account_id=identity.account_id, nickname=identity.nickname)
    if new is None:
        return _refused(request, target, "Wrong user name or password.", 401)
    state.throttle.succeeded(attempt)
    response = RedirectResponse(target, status_code=303)
    return await run_in_threadpool(_start_session, request, response, new)


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session server-side (a copy of the cookie is worthless afterwards)."""
    token = session_token(request)
    if token is not None:
        state_of(request).store.end(token)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=_secure(request))
    return response


def _flow_serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(state_of(request).settings.secret_key,
                                  salt="battletracker.wg-flow")


def _problem(request: Request, status: int, detail: str) -> Response:
    response = render(request, "error.html", {"status": status, "detail": detail},
                      status_code=status)
    response.delete_cookie(FLOW_COOKIE, path="/auth/wargaming")
    return response


@router.get("/auth/wargaming")
def wargaming_start(request: Request) -> Response:
    """Send the browser to Wargaming's ``auth/login/`` with our callback and a nonce."""
    settings = state_of(request).settings
    if not settings.wg_signin_app_id:
        return render(request, "error.html", {
            "status": 503,
            "detail": "Wargaming sign-in is not configured (wg_signin_app_id)."},
            status_code=503)
    nonce = secrets.token_urlsafe(24)
    callback = f"{request.url_for('wargaming_callback')}?{urlencode({'state': nonce})}"
    query = urlencode({"application_id": settings.wg_signin_app_id,
                       "redirect_uri": callback})
    sep = "&" if "?" in settings.wg_openid_url else "?"
    response = RedirectResponse(f"{settings.wg_openid_url}{sep}{query}", status_code=302)
    response.set_cookie(FLOW_COOKIE, _flow_serializer(request).dumps(nonce),
                        max_age=FLOW_MAX_AGE, httponly=True, samesite="lax",
                        secure=_secure(request), path="/auth/wargaming")
    return response


@router.get("/auth/wargaming/callback", name="wargaming_callback")
async def wargaming_callback(
    request: Request,
    state: str = "",
    status: str = "",
    access_token: str = "",
    account_id: str = "",
    message: str = "",
) -> Response:
    """Sign the player in once the nonce matches and the API confirms the token."""
    settings = state_of(request).settings
    current = await run_in_threadpool(get_identity, request)  # pages below render it
    try:
        nonce = _flow_serializer(request).loads(request.cookies.get(FLOW_COOKIE, ""),
                                                max_age=FLOW_MAX_AGE)
    except BadSignature:
        nonce = None
    if not (isinstance(nonce, str) and state
            and secrets.compare_digest(state.encode(), nonce.encode())):
        return _problem(request, 400, "This sign-in was not started here, or took too "
                                      "long. Please try again.")
    if status != "ok":
        why = message[:64] or status[:16] or "no status"
        return _problem(request, 400, f"Wargaming did not sign you in ({why}).")
    if not (account_id.isascii() and account_id.isdigit() and len(account_id) <= 19
            and 0 < int(account_id) < 2**63):
        return _problem(request, 400, "Wargaming answered without a valid account id.")
    try:
        player = await verify_token(settings, int(account_id), access_token,
                                    transport=request.app.state.wg_transport)
    except SignInRefused:
        return _problem(request, 400, "Wargaming did not confirm this sign-in.")
    except SignInUnavailable:
        return _problem(request, 502, "Wargaming could not be asked to confirm the sign-in; "
                                      "please try again later.")
    new = Identity(operator=current.operator, guest=current.guest,
                   account_id=player.account_id, nickname=player.nickname)
    response = RedirectResponse("/me", status_code=303)
    response.delete_cookie(FLOW_COOKIE, path="/auth/wargaming")
    return await run_in_threadpool(_start_session, request, response, new)
