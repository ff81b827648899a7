"""Wargaming sign-in, verified on the server: the callback's token is checked with the API.

The ``auth/login/`` redirect flow hands the browser an ``access_token`` and an
``account_id`` in the callback URL: anyone can type such a URL. So the callback is
believed only when

- its ``state`` matches the nonce this browser was given when it started the flow (a
  signed, 10-minute cookie), so nobody can sign a victim in as someone else; and
- ``account/info/?account_id=ID&access_token=T`` answers the account's ``private``
  block, which the API shows only to the bearer of a token issued to that very account
  for our application id. The nickname shown is the API's, not the URL's.

Sign-in uses its own application id (``wg_signin_app_id``): it appears in the browser's
address bar, so it must never be a crawl key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from ..settings import Settings

__all__ = ["SignInRefused", "SignInUnavailable", "VerifiedPlayer", "verify_token"]

_TOKEN = re.compile(r"^[A-Za-z0-9_.-]{8,256}$")


class SignInRefused(Exception):
    """The API says the token does not belong to the claimed account (or is invalid)."""


class SignInUnavailable(Exception):
    """The API could not be asked (network, timeout, server error): try again later."""


@dataclass(frozen=True)
class VerifiedPlayer:
    """An account whose token the API confirmed."""

    account_id: int
    nickname: str


async def verify_token(settings: Settings, account_id: int, access_token: str, *,
                       transport: httpx.AsyncBaseTransport | None = None) -> VerifiedPlayer:
    """Ask the API whether ``access_token`` is ``account_id``'s, for our application id."""
    if not _TOKEN.match(access_token):
        raise SignInRefused("malformed access token")
    url = settings.wg_api_url.rstrip("/") + "/account/info/"
    params = {"application_id": settings.wg_signin_app_id, "account_id": str(account_id),
              "access_token": access_token, "fields": "account_id,nickname,private"}
    try:
        async with httpx.AsyncClient(timeout=settings.request_timeout,
                                     transport=transport) as client:
            # POST: the token stays out of any access log between here and the API
            response = await client.post(url, data=params)
        response.raise_for_status()
        body: Any = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SignInUnavailable(f"{exc.__class__.__name__}") from exc
    if not isinstance(body, dict):
        raise SignInUnavailable("the API answered something that is not an object")
    if body.get("status") != "ok":
        error = body.get("error")
        message = str(error.get("message", "no status") if isinstance(error, dict)
                      else "no status")
        if message in ("INVALID_ACCESS_TOKEN", "ACCESS_TOKEN_EXPIRED", "INVALID_ACCOUNT_ID"):
            raise SignInRefused(message)
        raise SignInUnavailable(message)
    data = body.get("data")
    account = data.get(str(account_id)) if isinstance(data, dict) else None
    if not isinstance(account, dict) or account.get("account_id") != account_id:
        raise SignInRefused("no such account")
    if not isinstance(account.get("private"), dict):
        # the token is valid, but not this account's: someone claims another's id
        raise SignInRefused("the token is not this account's")
    nickname = account.get("nickname")
    if not isinstance(nickname, str) or not 0 < len(nickname) <= 64:
        raise SignInRefused("the account has no nickname")
    return VerifiedPlayer(account_id, nickname)
