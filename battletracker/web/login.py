"""Logins: operators and the shared guest (``/login``), players via Wargaming, logout.

The session cookie is signed and timestamped (:class:`~.auth.SessionCodec`), HttpOnly and
SameSite=Lax (so a cross-site form cannot log anyone out or in with it), Secure when the
app is served over https, and expires after ``session_max_age``.

Wargaming sign-in is the ``auth/login/`` redirect flow: we send the browser to
``wg_openid_url?application_id=…&redirect_uri=…/auth/wargaming/callback`` and Wargaming
sends it back with ``status=ok&access_token=…&nickname=…&account_id=…&expires_at=…``.
The callback only accepts a flow this browser started in the last 10 minutes (a signed
``bt_wg_flow`` cookie) and well-formed values. It does not call Wargaming to verify the
access token (the classic flow's trust model): a player session grants nothing but
"this is my page", so a forged one only shows public data.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from .auth import SESSION_COOKIE, Identity, check_operator
from .deps import get_identity, state_of
from .templating import render

__all__ = ["router", "safe_next"]

router = APIRouter(include_in_schema=False)

FLOW_COOKIE = "bt_wg_flow"
FLOW_MAX_AGE = 600
_NICKNAME = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")


def safe_next(target: str | None) -> str:
    """Only local paths: ``next=https://evil`` or ``//evil`` becomes ``/``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _with_identity(request: Request, response: Response, identity: Identity) -> Response:
    state = state_of(request)
    response.set_cookie(
        SESSION_COOKIE,
        state.codec.dumps(identity),
        max_age=state.settings.session_max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/", operator: int = 0) -> Response:
    return render(request, "login.html",
                  {"next": safe_next(next), "operator": bool(operator), "error": None})


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=128)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    """Operator names first (hashed passwords), then the shared guest, if turned on."""
    state = state_of(request)
    identity = get_identity(request)
    target = safe_next(next)
    if check_operator(state.settings.operators, username, password):
        new = Identity(operator=username, guest=identity.guest,
                       account_id=identity.account_id, nickname=identity.nickname)
        return _with_identity(request, RedirectResponse(target, status_code=303), new)
    if (state.settings.guest_login and username in ("", "guest")
            and secrets.compare_digest(password.encode(), state.settings.guest_password.encode())):
        new = Identity(operator=identity.operator, guest=True,
                       account_id=identity.account_id, nickname=identity.nickname)
        return _with_identity(request, RedirectResponse(target, status_code=303), new)
    time.sleep(0.2)  # a little friction for password guessing
    return render(request, "login.html",
                  {"next": target, "operator": True, "error": "Wrong user name or password."},
                  status_code=401)


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _flow_serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(state_of(request).settings.secret_key,
                                  salt="battletracker.wg-flow")


@router.get("/auth/wargaming")
def wargaming_start(request: Request) -> Response:
    """Send the browser to Wargaming's ``auth/login/`` with our callback."""
    settings = state_of(request).settings
    if not settings.wg_keys:
        return render(request, "error.html", {
            "status": 503,
            "detail": "Wargaming sign-in is not configured (no application id in wg_keys)."},
            status_code=503)
    callback = str(request.url_for("wargaming_callback"))
    query = urlencode({"application_id": settings.wg_keys[0].app_id,
                       "redirect_uri": callback})
    sep = "&" if "?" in settings.wg_openid_url else "?"
    response = RedirectResponse(f"{settings.wg_openid_url}{sep}{query}", status_code=302)
    response.set_cookie(FLOW_COOKIE, _flow_serializer(request).dumps(secrets.token_hex(8)),
                        max_age=FLOW_MAX_AGE, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/auth/wargaming")
    return response


@router.get("/auth/wargaming/callback", name="wargaming_callback")
def wargaming_callback(
    request: Request,
    status: str = "",
    access_token: str = "",
    nickname: str = "",
    account_id: str = "",
    expires_at: str = "",
    message: str = "",
) -> Response:
    """Accept ``status=ok`` with a numeric account id from a flow we started; else 400."""
    problem = None
    try:
        _flow_serializer(request).loads(request.cookies.get(FLOW_COOKIE, ""),
                                        max_age=FLOW_MAX_AGE)
    except BadSignature:
        problem = "This sign-in was not started here, or took too long. Please try again."
    if problem is None and status != "ok":
        problem = f"Wargaming did not sign you in ({message or status or 'no status'})."
    if problem is None and not (account_id.isascii() and account_id.isdigit()
                                and 0 < int(account_id) < 2**63):
        problem = "Wargaming answered without a valid account id."
    if problem is None and not (access_token and _NICKNAME.match(nickname)
                                and expires_at.isascii() and expires_at.isdigit()):
        problem = "Wargaming answered with an incomplete sign-in."
    if problem is None and int(expires_at) < time.time():
        problem = "Wargaming's sign-in has already expired."
    if problem is not None:
        return render(request, "error.html", {"status": 400, "detail": problem},
                      status_code=400)
    current = get_identity(request)
    new = Identity(operator=current.operator, guest=current.guest,
                   account_id=int(account_id), nickname=nickname)
    response = _with_identity(request, RedirectResponse("/me", status_code=303), new)
    response.delete_cookie(FLOW_COOKIE, path="/auth/wargaming")
    return response
