"""``auth/login/``: the Wargaming sign-in redirect, reduced to what the web app needs.

The real flow shows a login page and then redirects the browser to ``redirect_uri``
with the player's token; here the "player" is fixed in advance (``account_id``) so a web
test can sign in as a known account without any page in between. Setting ``account_id``
to an id without an account makes the redirect report ``AUTH_CANCEL``, as when a player
closes the real login page.

A token is as strict as the real one: it belongs to one account and one application id
and expires. ``account/info/`` with ``access_token`` (:meth:`SignIn.owner`) answers
``INVALID_ACCESS_TOKEN`` for any token it did not issue, issued to another application,
or expired, and fills ``private`` only for the token's own account; ``auth/logout/``
ends a token. Unlike the real API the redirect keeps ``redirect_uri``'s own query (the
web app's ``state``), as browsers and the real flow do.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from .population import XBOX_MIN
from .replies import Reply, api_error, json_reply, key_error

if TYPE_CHECKING:
    from .handler import Simulator

__all__ = ["TOKEN_LIFETIME", "SignIn", "private_block"]

#: Seconds an access token is valid, like the real API's two weeks.
TOKEN_LIFETIME = 14 * 86_400


class SignIn:
    """Issues access tokens for one configurable account."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        #: The account signed in; None means the lowest existing Xbox id of the day.
        self.account_id: int | None = None
        #: Every token issued, to the account it belongs to.
        self.tokens: dict[str, int] = {}
        #: Token -> (application id it was issued to, Unix expiry).
        self._grants: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        #: Wall clock for token expiry (tests move it).
        self.clock = time.time

    def chosen_account(self) -> int:
        """The account id that the next sign-in yields."""
        if self.account_id is not None:
            return self.account_id
        population, day = self._sim.population, self._sim.day
        for account_id in population.id_range("xbox", day):
            if population.exists(account_id, day):
                return account_id
        return XBOX_MIN  # no Xbox account at all: the login is cancelled below

    def login(self, params: Mapping[str, str], client_ip: str | None) -> Reply:
        """``GET auth/login/?application_id=K&redirect_uri=URL`` -> 302 to URL with a token."""
        key = params.get("application_id") or None
        refused = self._sim.check_key(params, client_ip)
        if refused is not None:
            self._sim.count(refused, key)
            return key_error(refused)
        redirect = params.get("redirect_uri", "")
        if not redirect:
            self._sim.count("REDIRECT_URI_NOT_SPECIFIED", key)
            return api_error("REDIRECT_URI_NOT_SPECIFIED", 402, "redirect_uri")
        try:
            target = httpx.URL(redirect)
            if target.scheme not in ("http", "https") or not target.host:
                raise ValueError(redirect)
        except (ValueError, httpx.InvalidURL):
            self._sim.count("INVALID_REDIRECT_URI", key)
            return api_error("INVALID_REDIRECT_URI", 407, "redirect_uri", redirect)
        account_id = self.chosen_account()
        account = self._sim.population.account(account_id, self._sim.day)
        if account is None:
            self._sim.count("auth_cancel", key)
            query = {"status": "error", "code": "401", "message": "AUTH_CANCEL"}
            return Reply(302, headers=(("location", str(target.copy_merge_params(query))),))
        expires_at = int(self.clock()) + TOKEN_LIFETIME
        with self._lock:
            seed = f"{self._sim.population.seed}:{account_id}:{len(self.tokens)}"
            token = hashlib.sha1(seed.encode()).hexdigest()
            self.tokens[token] = account_id
            self._grants[token] = (str(key), expires_at)
        self._sim.count("auth_ok", key)
        query = {"status": "ok", "access_token": token, "nickname": account["nickname"],
                 "account_id": str(account_id), "expires_at": str(expires_at)}
        return Reply(302, headers=(("location", str(target.copy_merge_params(query))),))

    def owner(self, token: str, application_id: str) -> int | None:
        """The account ``token`` was issued to, if issued to ``application_id`` and live."""
        with self._lock:
            account_id = self.tokens.get(token)
            grant = self._grants.get(token)
        if account_id is None or grant is None:
            return None
        app, expires_at = grant
        if app != application_id or self.clock() >= expires_at:
            return None
        return account_id

    def logout(self, params: Mapping[str, str], client_ip: str | None) -> Reply:
        """``auth/logout/``: the token stops working at once."""
        key = params.get("application_id") or None
        refused = self._sim.check_key(params, client_ip)
        if refused is not None:
            self._sim.count(refused, key)
            return key_error(refused)
        token = params.get("access_token", "")
        if self.owner(token, str(key)) is None:
            self._sim.count("INVALID_ACCESS_TOKEN", key)
            return api_error("INVALID_ACCESS_TOKEN", 407, "access_token")
        with self._lock:
            self._grants.pop(token, None)
        self._sim.count("auth_logout", key)
        return json_reply({"status": "ok", "data": None})


def private_block(account: dict[str, object]) -> dict[str, object]:
    """What ``private`` holds for the token's own account (a few of the real fields)."""
    account_id = int(str(account["account_id"]))
    return {"credits": account_id * 7 % 5_000_000, "gold": account_id % 20_000,
            "free_xp": account_id * 3 % 100_000, "is_premium": account_id % 3 == 0,
            "ban_info": None}
