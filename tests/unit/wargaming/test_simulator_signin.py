"""The simulator's access tokens are as strict as the real API's: bound to an account,
an application id and an expiry, checked by ``account/info`` and ended by ``auth/logout``."""

from __future__ import annotations

import httpx

from battletracker.wargaming.simulator import BASE_URL, Population, Simulator

POPULATION = Population(seed=5, xbox_ids=300, ps_ids=300, new_per_day=50)


def _sim() -> tuple[Simulator, httpx.Client]:
    sim = Simulator(POPULATION, keys={"signin": 50.0, "other": 50.0})
    return sim, httpx.Client(transport=sim.transport(), base_url=BASE_URL)


def _token(client: httpx.Client, app: str = "signin") -> tuple[str, int]:
    r = client.get("auth/login/", params={"application_id": app,
                                          "redirect_uri": "http://app.example/cb"})
    query = dict(httpx.URL(r.headers["location"]).params)
    return query["access_token"], int(query["account_id"])


def _info(client: httpx.Client, account: int, token: str | None, app: str = "signin",
          ) -> dict:  # type: ignore[type-arg]
    params = {"application_id": app, "account_id": str(account),
              "fields": "account_id,nickname,private"}
    if token is not None:
        params["access_token"] = token
    return client.post("account/info/", data=params).json()  # type: ignore[no-any-return]


def _error(body: dict) -> str:  # type: ignore[type-arg]
    assert body["status"] == "error"
    return str(body["error"]["message"])


def test_private_only_for_the_tokens_own_account() -> None:
    _, client = _sim()
    token, owner = _token(client)
    mine = _info(client, owner, token)
    assert mine["status"] == "ok"
    private = mine["data"][str(owner)]["private"]
    assert isinstance(private, dict) and "credits" in private
    other = next(a for a, _ in POPULATION.truth(0) if a != owner)
    theirs = _info(client, other, token)
    assert theirs["status"] == "ok" and theirs["data"][str(other)]["private"] is None
    both = client.get("account/info/", params={
        "application_id": "signin", "account_id": f"{owner},{other}",
        "access_token": token, "fields": "private"}).json()
    assert both["data"][str(owner)]["private"] and both["data"][str(other)]["private"] is None
    assert _info(client, owner, None)["data"][str(owner)]["private"] is None  # no token


def test_tokens_it_did_not_issue_are_refused() -> None:
    _, client = _sim()
    _, owner = _token(client)
    for forged in ("x" * 40, "0123456789abcdef0123456789abcdef01234567", "t"):
        assert _error(_info(client, owner, forged)) == "INVALID_ACCESS_TOKEN"


def test_a_token_works_only_with_the_application_it_was_issued_to() -> None:
    _, client = _sim()
    token, owner = _token(client, app="other")
    assert _error(_info(client, owner, token, app="signin")) == "INVALID_ACCESS_TOKEN"
    assert _info(client, owner, token, app="other")["status"] == "ok"


def test_expired_and_logged_out_tokens_are_refused() -> None:
    sim, client = _sim()
    now = [1_000_000.0]
    sim.signin.clock = lambda: now[0]
    token, owner = _token(client)
    assert _info(client, owner, token)["status"] == "ok"
    now[0] += 14 * 86_400  # the token's two weeks are over
    assert _error(_info(client, owner, token)) == "INVALID_ACCESS_TOKEN"
    now[0] = 1_000_000.0
    token, owner = _token(client)
    out = client.post("auth/logout/", data={"application_id": "signin", "access_token": token})
    assert out.json() == {"status": "ok", "data": None}
    assert _error(_info(client, owner, token)) == "INVALID_ACCESS_TOKEN"
    again = client.post("auth/logout/", data={"application_id": "signin",
                                              "access_token": token}).json()
    assert _error(again) == "INVALID_ACCESS_TOKEN"
