"""The simulated API through httpx.MockTransport: envelope, fields, errors, limits, faults."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from battletracker.wargaming.simulator import (
    BASE_URL,
    FIELDS_LIMIT_MESSAGE,
    XBOX_MIN,
    Faults,
    Population,
    Simulator,
)

ROOT = "http://simulator.invalid"
POPULATION = Population(seed=5, xbox_ids=300, ps_ids=300, new_per_day=50)


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**kwargs: Any) -> tuple[Simulator, httpx.Client]:
    sim = Simulator(POPULATION, **kwargs)
    return sim, httpx.Client(transport=sim.transport(), base_url=BASE_URL)


def info(client: httpx.Client, **params: Any) -> Any:
    params.setdefault("application_id", "demo")
    response = client.get("account/info/", params=params)
    assert response.status_code == 200
    return response.json()


def error_of(body: Any) -> tuple[str, int]:
    assert body["status"] == "error" and set(body) == {"status", "error"}
    assert set(body["error"]) == {"field", "message", "code", "value"}
    return body["error"]["message"], body["error"]["code"]


def existing(day: int = 0, n: int = 3) -> list[int]:
    return [i for i, _ in POPULATION.truth(day)][:n]


def test_success_envelope_is_exact() -> None:
    _, client = make()
    a, b = existing(n=2)
    missing = next(i for i in range(XBOX_MIN, XBOX_MIN + 300) if not POPULATION.exists(i, 0))
    body = info(client, account_id=f"{a},{missing},{b},{a},999999999")
    assert list(body) == ["status", "meta", "data"] and body["status"] == "ok"
    assert body["meta"] == {"count": 4}
    assert list(body["data"]) == [str(a), str(missing), str(b), "999999999"]
    assert body["data"][str(missing)] is None and body["data"]["999999999"] is None
    assert body["data"][str(a)] == POPULATION.account(a, 0)


def test_post_form_is_the_same_as_get() -> None:
    _, client = make()
    ids = ",".join(map(str, existing()))
    posted = client.post("account/info/", data={"application_id": "demo", "account_id": ids})
    assert posted.json() == info(client, account_id=ids)


def test_day_advances_the_data() -> None:
    sim, client = make()
    top = POPULATION.top_id("ps", 2)
    assert info(client, account_id=top)["data"][str(top)] is None
    sim.day = 2
    assert info(client, account_id=top)["data"][str(top)] == POPULATION.account(top, 2)
    with pytest.raises(ValueError):
        sim.day = -1


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("nickname", {"nickname"}),
        ("nickname, account_id,bogus", {"nickname", "account_id"}),
        ("statistics.all.battles,nickname", {"nickname", "statistics.all.battles"}),
        ("statistics,-statistics.all", {"statistics.company"}),
        ("-statistics,-private,-created_at", {"account_id", "nickname", "updated_at",
                                              "last_battle_time", "global_rating"}),
        ("statistics.all,-statistics.all.wins,-bogus.x",
         {f"statistics.all.{c}" for c in
          ("battles", "losses", "draws", "spotted", "frags", "damage_dealt",
           "damage_received", "dropped_capture_points", "capture_points", "xp", "hits",
           "shots", "survived_battles")}),
    ],
)
def test_fields_select_and_exclude_dot_paths(fields: str, expected: set[str]) -> None:
    _, client = make()
    (a,) = existing(n=1)
    account = info(client, account_id=a, fields=fields)["data"][str(a)]
    full = POPULATION.account(a, 0)
    assert full is not None

    def leaves(obj: dict[str, Any], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for key, value in obj.items():
            if isinstance(value, dict) and prefix + key not in expected:
                out |= leaves(value, f"{prefix}{key}.")
            else:
                out.add(prefix + key)
        return out

    assert leaves(account) == expected
    for path in expected:  # values are the real ones, nested dicts preserved
        got, want = account, full
        for part in path.split("."):
            got, want = got[part], want[part]
        assert got == want


ERRORS = [
    ({"application_id": ""}, "APPLICATION_ID_NOT_SPECIFIED", 402, "application_id"),
    ({"application_id": "nope"}, "INVALID_APPLICATION_ID", 407, "application_id"),
    ({"application_id": "blocked"}, "APPLICATION_IS_BLOCKED", 407, None),
    ({"account_id": ""}, "ACCOUNT_ID_NOT_SPECIFIED", 402, "account_id"),
    ({"account_id": ",".join(str(i) for i in range(5000, 5101))},
     "ACCOUNT_ID_LIST_LIMIT_EXCEEDED", 407, "account_id"),
    ({"account_id": "5000,abc"}, "INVALID_ACCOUNT_ID", 407, "account_id"),
    ({"account_id": "5000,-5"}, "INVALID_ACCOUNT_ID", 407, "account_id"),
    ({"account_id": "5000", "fields": ",".join(["nickname"] * 101)},
     FIELDS_LIMIT_MESSAGE, 407, "fields"),
]


@pytest.mark.parametrize(("params", "message", "code", "field"), ERRORS)
def test_every_request_error(params: dict[str, str], message: str, code: int,
                             field: str | None) -> None:
    sim, client = make(keys={"demo": 20.0, "blocked": 20.0}, blocked_keys=["blocked"])
    params = {"application_id": "demo", "account_id": "5000", **params}
    if not params["account_id"]:
        del params["account_id"]
    body = info(client, **params)
    assert error_of(body) == (message, code)
    assert body["error"]["field"] == field
    assert sim.stats()["outcomes"] == {message: 1}


def test_exactly_100_ids_are_fine() -> None:
    _, client = make()
    body = info(client, account_id=",".join(str(i) for i in range(5000, 5100)))
    assert body["meta"]["count"] == 100


def test_unknown_paths_are_method_not_found() -> None:
    _, client = make()
    for path in ("account/list/", "account/info", "/wot/account/info/", "/"):
        body = client.get(path, params={"application_id": "demo"}).json()
        assert error_of(body) == ("METHOD_NOT_FOUND", 404)


def test_ip_restricted_keys() -> None:
    sim = Simulator(POPULATION, keys={"srv": 20.0, "any": 10.0},
                    allowed_ips={"srv": {"10.0.0.1"}})
    request = httpx.Request("GET", BASE_URL + "account/info/",
                            params={"application_id": "srv", "account_id": "5000"})
    assert error_of(sim.handle(request, client_ip="10.0.0.2").json()) == (
        "INVALID_IP_ADDRESS", 407)
    assert sim.handle(request, client_ip="10.0.0.1").json()["status"] == "ok"
    other = httpx.Request("GET", BASE_URL + "account/info/",
                          params={"application_id": "any", "account_id": "5000"})
    assert sim.handle(other, client_ip="10.0.0.2").json()["status"] == "ok"


def test_a_burst_beyond_rps_is_refused_and_refusals_cost_nothing() -> None:
    clock = FakeClock()
    sim, client = make(keys={"demo": 10.0, "other": 5.0}, clock=clock)
    answers = [info(client, account_id="5000")["status"] for _ in range(13)]
    assert answers == ["ok"] * 10 + ["error"] * 3
    body = info(client, account_id="5000")
    assert error_of(body) == ("REQUEST_LIMIT_EXCEEDED", 407)
    assert info(client, application_id="other", account_id="5000")["status"] == "ok"
    clock.now += 0.1  # one token back, however many refusals happened meanwhile
    assert info(client, account_id="5000")["status"] == "ok"
    assert info(client, account_id="5000")["status"] == "error"
    stats = sim.stats()
    assert stats["outcomes"] == {"ok": 12, "limit": 5}
    assert stats["by_key"] == {"demo": 16, "other": 1}


def test_pacing_at_rps_is_never_refused() -> None:
    clock = FakeClock()
    _, client = make(keys={"demo": 20.0}, clock=clock)
    for _ in range(20):  # spend the initial burst
        assert info(client, account_id="5000")["status"] == "ok"
    for _ in range(200):
        clock.now += 1 / 20
        assert info(client, account_id="5000")["status"] == "ok"


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("source_unavailable", lambda r: error_of(r.json()) == ("SOURCE_NOT_AVAILABLE", 504)),
        ("method_disabled", lambda r: error_of(r.json()) == ("METHOD_DISABLED", 405)),
        ("request_limit", lambda r: error_of(r.json()) == ("REQUEST_LIMIT_EXCEEDED", 407)),
        ("http_500", lambda r: r.status_code == 500),
        ("garbage", lambda r: r.status_code == 200 and not r.text.startswith("{")),
    ],
)
def test_scripted_faults_hit_exactly_the_next_requests(fault: str, check: Any) -> None:
    sim, client = make()
    sim.inject(fault, count=2)
    params = {"application_id": "demo", "account_id": "5000"}
    for _ in range(2):
        assert check(client.get("account/info/", params=params))
    assert info(client, account_id="5000")["status"] == "ok"
    assert sim.faults.pending() == 0


def test_garbage_is_not_json() -> None:
    sim, client = make()
    sim.inject("garbage")
    with pytest.raises(json.JSONDecodeError):
        client.get("account/info/", params={"application_id": "demo", "account_id": "1"}).json()


def test_dropped_connection_raises_a_transport_error() -> None:
    sim, client = make()
    sim.inject("drop")
    sim.inject("source_unavailable")
    with pytest.raises(httpx.RemoteProtocolError):
        info(client, account_id="5000")
    assert error_of(info(client, account_id="5000"))[0] == "SOURCE_NOT_AVAILABLE"
    assert sim.stats()["outcomes"] == {"drop": 1, "SOURCE_NOT_AVAILABLE": 1}
    with pytest.raises(ValueError):
        sim.inject("meteor")


def test_random_faults_are_reproducible_per_seed() -> None:
    faults = Faults(source_unavailable=0.2, http_500=0.1, garbage=0.1, seed=11)

    def outcomes(faults: Faults) -> list[str]:
        _, client = make(faults=faults, keys={"demo": 1e6})
        params = {"application_id": "demo", "account_id": "5000"}
        answers = [client.get("account/info/", params=params) for _ in range(60)]
        return [f"{a.status_code}:{a.text}" for a in answers]

    first = outcomes(faults)
    assert first == outcomes(faults)
    assert first != outcomes(Faults(source_unavailable=0.2, http_500=0.1, garbage=0.1, seed=12))
    assert 5 < sum("SOURCE_NOT_AVAILABLE" in o for o in first) < 25
    with pytest.raises(ValueError):
        Faults(drop=0.7, garbage=0.5)


def test_stats_count_ids_and_accounts() -> None:
    sim, client = make()
    a, b = existing(n=2)
    info(client, account_id=f"{a},{b},{a},999999999")
    info(client, application_id="bad", account_id=str(a))
    stats = sim.stats()
    assert stats["requests"] == 2 and stats["ids_served"] == 3 and stats["accounts_served"] == 2
    assert stats["by_key"] == {"demo": 1, "bad": 1}
    assert stats["outcomes"] == {"ok": 1, "INVALID_APPLICATION_ID": 1}


def test_async_client_and_latency() -> None:
    sim = Simulator(POPULATION, faults=Faults(latency=(0.05, 0.05)))

    async def run() -> list[Any]:
        async with httpx.AsyncClient(transport=sim.transport(), base_url=BASE_URL) as client:
            params = {"application_id": "demo", "account_id": "5000"}
            answers = await asyncio.gather(
                *(client.get("account/info/", params=params) for _ in range(5)))
            return [a.json() for a in answers]

    started = time.perf_counter()
    answers = asyncio.run(run())
    elapsed = time.perf_counter() - started
    assert all(a["status"] == "ok" for a in answers)
    assert 0.05 <= elapsed < 0.2  # slept concurrently, not one after another


def test_login_redirects_with_a_token_for_the_chosen_account() -> None:
    sim, client = make()
    params = {"application_id": "demo", "redirect_uri": "http://app.example/cb?next=/me"}
    response = client.get("auth/login/", params=params)
    assert response.status_code == 302
    url = httpx.URL(response.headers["location"])
    query = dict(url.params)
    lowest = existing(n=1)[0]
    assert url.host == "app.example" and url.path == "/cb" and query["next"] == "/me"
    assert query["status"] == "ok" and query["account_id"] == str(lowest)
    account = POPULATION.account(lowest, 0)
    assert account is not None and query["nickname"] == account["nickname"]
    assert sim.signin.tokens[query["access_token"]] == lowest
    assert int(query["expires_at"]) > time.time() + 86_400
    sim.login_account = existing(n=3)[2]
    again = dict(httpx.URL(client.get("auth/login/", params=params).headers["location"]).params)
    assert again["account_id"] == str(existing(n=3)[2])
    assert again["access_token"] != query["access_token"]
    sim.login_account = 1  # no such account: the player "cancelled"
    cancelled = dict(httpx.URL(client.get("auth/login/", params=params).headers["location"]).params)
    assert cancelled == {"next": "/me", "status": "error", "code": "401", "message": "AUTH_CANCEL"}


def test_login_errors() -> None:
    _, client = make()
    assert error_of(client.get("auth/login/", params={"application_id": "x"}).json())[0] == (
        "INVALID_APPLICATION_ID")
    body = client.get("auth/login/", params={"application_id": "demo"}).json()
    assert error_of(body) == ("REDIRECT_URI_NOT_SPECIFIED", 402)
    body = client.get("auth/login/", params={"application_id": "demo",
                                             "redirect_uri": "javascript:alert(1)"}).json()
    assert error_of(body) == ("INVALID_REDIRECT_URI", 407)


def test_control_endpoints_in_process() -> None:
    sim, client = make()
    assert client.post(ROOT + "/_sim/day", json={"day": 3}).json() == {"day": 3}
    assert sim.day == 3
    assert client.post(ROOT + "/_sim/inject", json={"fault": "drop", "count": 2}).json() == {
        "pending": 2}
    assert client.post(ROOT + "/_sim/inject", json={"fault": "meteor"}).status_code == 400
    assert client.post(ROOT + "/_sim/day", json={"day": -1}).status_code == 400
    assert client.post(ROOT + "/_sim/day", content=b"not json").status_code == 400
    assert client.get(ROOT + "/_sim/nothing").status_code == 404
    assert client.get(ROOT + "/_sim/stats").json()["requests"] == 0


def test_keys_added_or_changed_later_get_their_own_bucket() -> None:
    clock = FakeClock()
    sim, client = make(keys={"demo": 2.0}, clock=clock)
    sim.keys["late"] = 1.0
    assert [info(client, application_id="late", account_id="1")["status"]
            for _ in range(2)] == ["ok", "error"]
    sim.keys["demo"] = 3.0
    assert [info(client, account_id="1")["status"] for _ in range(4)] == [
        "ok", "ok", "ok", "error"]


def test_public_names_are_exported_and_documented() -> None:
    import importlib
    import pkgutil

    import battletracker.wargaming.simulator as package

    assert all(hasattr(package, name) for name in package.__all__)
    for info_ in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info_.name}")
        assert module.__doc__, module.__name__
        assert all(hasattr(module, name) for name in module.__all__), module.__name__
        public = {n for n, v in vars(module).items()
                  if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__}
        assert public <= set(module.__all__), (module.__name__, public - set(module.__all__))


def test_strict_window_counts_every_arrival_for_one_second() -> None:
    """The strict reading: N per sliding second, refusals counted, no burst credit."""
    clock = FakeClock()
    sim, client = make(keys={"demo": 4.0}, clock=clock, strict_window=True)
    answers = []
    for _ in range(5):  # 0.0, 0.3, 0.6, 0.9: ok; 1.2 sees 0.3/0.6/0.9 (3 < 4): ok
        answers.append(info(client, account_id="5000")["status"])
        clock.now += 0.3
    assert answers == ["ok"] * 5
    clock.now = 2000.0
    burst = [info(client, account_id="5000")["status"] for _ in range(6)]
    assert burst == ["ok"] * 4 + ["error"] * 2
    clock.now += 0.999  # all six still inside the second: refused, and counted again
    assert error_of(info(client, account_id="5000")) == ("REQUEST_LIMIT_EXCEEDED", 407)
    clock.now += 0.0011  # the burst has left the window; the one refusal at +0.999 remains
    assert info(client, account_id="5000")["status"] == "ok"
    stats = sim.stats()
    assert stats["limit"] == "window"
    assert stats["outcomes"] == {"ok": 10, "limit": 3}
    assert stats["peak_per_second"] == {"demo": 7}
    # when each refusal came, to tell an overrun's moment (against lease renewals, say)
    assert stats["limited_at"] == pytest.approx([2000.0, 2000.0, 2000.999])


def test_strict_window_accepts_exact_pacing_at_the_rate() -> None:
    clock = FakeClock()
    sim, client = make(keys={"demo": 20.0}, clock=clock, strict_window=True)
    for _ in range(200):
        assert info(client, account_id="5000")["status"] == "ok"
        clock.now += 0.05 + 1e-9
    assert sim.stats()["peak_per_second"] == {"demo": 20}


def test_a_template_population_answers_like_its_accounts() -> None:
    """The capacity benchmark's fast answers hold exactly the accounts ``account()`` gives."""
    from battletracker.wargaming.simulator import TemplatePopulation

    population = TemplatePopulation(seed=5, xbox_ids=300, ps_ids=300, new_per_day=0, pool=7)
    sim = Simulator(population)
    client = httpx.Client(transport=sim.transport(), base_url=BASE_URL)
    ids = [XBOX_MIN + i for i in range(100)]
    fields = "nickname,statistics.all.battles,statistics.all.wins,-statistics.all.wins"
    body = info(client, account_id=",".join(map(str, ids)), fields=fields)
    assert body["status"] == "ok" and body["meta"] == {"count": 100}
    for i in ids:
        account = population.account(i, 0)
        want = None if account is None else {
            "nickname": account["nickname"],
            "statistics": {"all": {"battles": account["statistics"]["all"]["battles"]}}}
        assert body["data"][str(i)] == want
    stats = sim.stats()
    assert stats["ids_served"] == 100
    assert stats["accounts_served"] == sum(population.exists(i, 0) for i in ids) > 0


def test_slot_cycle_is_the_same_for_bursts_and_even_pacing_at_one_pace() -> None:
    """The key-rate benchmark's measure: seconds for a slot to come round, whatever the
    arrangement within the window; refused requests do not count as used budget."""
    cycles = []
    for burst in (True, False):
        clock = FakeClock()
        sim, client = make(keys={"demo": 4.0}, clock=clock, strict_window=True)
        start = clock.now
        for k in range(40):
            clock.now = start + (k // 4) * 1.25 + ((k % 4) * 1e-3 if burst else (k % 4) * 0.3125)
            assert info(client, account_id="5000")["status"] == "ok"
        assert info(client, account_id="5000")["status"] == "error"  # a fifth in 1 s
        cycles.append(sim.stats()["slot_cycle"]["demo"])
    assert cycles == pytest.approx([1.25, 1.25])  # 4 per 1.25 s: 80 % of the budget


def test_slot_cycle_needs_two_windows_of_requests() -> None:
    clock = FakeClock()
    sim, client = make(keys={"demo": 4.0}, clock=clock, strict_window=True)
    for _ in range(7):
        info(client, account_id="5000")
        clock.now += 0.5
    assert sim.stats()["slot_cycle"] == {"demo": None}
    info(client, account_id="5000")
    assert sim.stats()["slot_cycle"]["demo"] == pytest.approx(2.0)
