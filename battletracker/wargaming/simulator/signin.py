"""``auth/login/``: the Wargaming sign-in redirect, reduced to what the web app needs.

The real flow shows a login page and then redirects the browser to ``redirect_uri``
with the player's token; here the "player" is fixed in advance (``account_id``) so a web
test can sign in as a known account without any page in between. Setting ``account_id``
to an id without an account makes the redirect report ``AUTH_CANCEL``, as when a player
closes the real login page.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from .population import XBOX_MIN
from .replies import Reply, api_error, key_error

if TYPE_CHECKING:
    from .handler import Simulator

__all__ = ["TOKEN_LIFETIME", "SignIn"]

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
        self._lock = threading.Lock()

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
        with self._lock:
            seed = f"{self._sim.population.seed}:{account_id}:{len(self.tokens)}"
            token = hashlib.sha1(seed.encode()).hexdigest()
            self.tokens[token] = account_id
        self._sim.count("auth_ok", key)
        query = {"status": "ok", "access_token": token, "nickname": account["nickname"],
                 "account_id": str(account_id),
                 "expires_at": str(int(time.time()) + TOKEN_LIFETIME)}
        return Reply(302, headers=(("location", str(target.copy_merge_params(query))),))
