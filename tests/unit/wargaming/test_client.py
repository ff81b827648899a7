"""The API client against the simulator: every error class of the reference, strict envelopes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

from battletracker.wargaming.client import ACCOUNT_FIELDS, MAX_IDS, AccountInfo, WargamingClient
from battletracker.wargaming.errors import (
    BadResponse,
    HttpStatusError,
    KeyUnusable,
    MethodDisabled,
    RequestBug,
    RequestLimitExceeded,
    SourceNotAvailable,
    TransientError,
    TransportError,
    WargamingError,
)
from battletracker.wargaming.simulator import (
    BASE_URL,
    XBOX_MIN,
    Population,
    RunningSimulator,
    Simulator,
    serve,
)

POPULATION = Population(seed=11, xbox_ids=400, ps_ids=100, new_per_day=10)
KEY = "key-a"
IDS = list(range(XBOX_MIN, XBOX_MIN + 10))
ENDPOINT = BASE_URL + "account/info/"


def make_sim(**kwargs: Any) -> Simulator:
    kwargs.setdefault("keys", {KEY: 1000.0})
    return Simulator(POPULATION, **kwargs)


def call(
    sim_or_transport: Simulator | httpx.AsyncBaseTransport,
    ids: Sequence[int] = IDS,
    *,
    app_id: str = KEY,
    base_url: str = BASE_URL,
) -> AccountInfo:
    """One ``account_info`` through a fresh client on its own event loop."""
    transport = (
        sim_or_transport.transport()
        if isinstance(sim_or_transport, Simulator)
        else sim_or_transport
    )

    async def go() -> AccountInfo:
        async with WargamingClient(base_url, app_id, transport=transport) as client:
            return await client.account_info(ids)

    return asyncio.run(go())


def crafted(body: bytes | str | Any, status: int = 200) -> httpx.MockTransport:
    """A transport that answers every request with ``body`` (JSON-encoded unless bytes/str)."""
    if isinstance(body, str):
        content = body.encode()
    elif isinstance(body, bytes):
        content = body
    else:
        content = json.dumps(body).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, request=request)

    return httpx.MockTransport(handler)


def envelope_error(message: str, code: int, field: str | None = None) -> dict[str, Any]:
    return {
        "status": "error",
        "error": {"field": field, "message": message, "code": code, "value": None},
    }


def assert_context(exc: WargamingError, ids: Sequence[int] = IDS) -> None:
    """Every error names the endpoint and the ids, in its attributes and in ``str()``."""
    assert exc.endpoint == ENDPOINT
    assert exc.account_ids == tuple(ids)
    text = str(exc)
    assert ENDPOINT in text
    assert f"{min(ids)}..{max(ids)}" in text


# -- success ----------------------------------------------------------------------------


def test_answer_equals_the_population_with_nulls_for_missing_accounts() -> None:
    sim = make_sim()
    ids = list(range(XBOX_MIN, XBOX_MIN + MAX_IDS))
    got = call(sim, ids)
    assert list(got) == ids
    nulls = [i for i in ids if POPULATION.account(i, 0) is None]
    assert nulls, "the population should hold some empty ids in this range"
    for account_id in ids:
        truth = POPULATION.account(account_id, 0)
        if truth is None:
            assert got[account_id] is None
        else:
            obj = got[account_id]
            assert obj is not None
            assert obj["account_id"] == account_id
            assert obj["nickname"] == truth["nickname"]
            assert obj["last_battle_time"] == truth["last_battle_time"]
            assert obj["statistics"] == {"all": truth["statistics"]["all"]}
            assert "global_rating" not in obj  # only ACCOUNT_FIELDS were asked
    assert sim.stats()["outcomes"] == {"ok": 1}
    assert sim.stats()["by_key"] == {KEY: 1}


def test_the_request_carries_key_ids_and_fields() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        data = {str(i): None for i in IDS}
        return httpx.Response(200, json={"status": "ok", "meta": {"count": 10}, "data": data})

    call(httpx.MockTransport(handler), [*IDS, IDS[0]])  # a duplicate is asked once
    (request,) = seen
    params = dict(httpx.QueryParams(request.content.decode()))
    assert request.url == ENDPOINT
    assert params == {
        "application_id": KEY,
        "account_id": ",".join(map(str, IDS)),
        "fields": ",".join(ACCOUNT_FIELDS),
    }


def test_nulls_are_none() -> None:
    body = {"status": "ok", "meta": {"count": 2}, "data": {"5000": None, "5001": {"a": 1}}}
    assert call(crafted(body), [5000, 5001]) == {5000: None, 5001: {"a": 1}}


# -- misuse of the client --------------------------------------------------------------


@pytest.mark.parametrize("n", [0, MAX_IDS + 1])
def test_wrong_number_of_ids_is_a_value_error_before_any_request(n: int) -> None:
    sim = make_sim()
    with pytest.raises(ValueError, match=f"1..{MAX_IDS} ids, got {n}"):
        call(sim, list(range(XBOX_MIN, XBOX_MIN + n)))
    assert sim.stats()["requests"] == 0


def test_value_error_is_not_a_wargaming_error() -> None:
    assert not issubclass(ValueError, WargamingError)
    assert not issubclass(WargamingError, ValueError)


# -- API errors from the simulator -------------------------------------------------------


def test_request_limit_exceeded() -> None:
    sim = make_sim(keys={KEY: 1.0})
    call(sim)  # the bucket holds one token
    with pytest.raises(RequestLimitExceeded) as caught:
        call(sim)
    exc = caught.value
    assert not isinstance(exc, TransientError)
    assert exc.api_message == "REQUEST_LIMIT_EXCEEDED" and exc.code == 407
    assert exc.retry_after > 0
    assert_context(exc)
    assert "REQUEST_LIMIT_EXCEEDED" in str(exc)


def test_injected_request_limit() -> None:
    sim = make_sim()
    sim.inject("request_limit")
    with pytest.raises(RequestLimitExceeded):
        call(sim)
    assert call(sim)  # the next request goes through


def test_source_not_available_is_transient() -> None:
    sim = make_sim()
    sim.inject("source_unavailable")
    with pytest.raises(SourceNotAvailable) as caught:
        call(sim)
    assert isinstance(caught.value, TransientError)
    assert caught.value.code == 504
    assert_context(caught.value)


@pytest.mark.parametrize(
    ("fault", "error"),
    [("http_500", BadResponse), ("garbage", BadResponse), ("drop", TransportError)],
)
def test_transport_faults_are_transient(fault: str, error: type[TransientError]) -> None:
    sim = make_sim()
    sim.inject(fault)
    with pytest.raises(error) as caught:
        call(sim)
    assert isinstance(caught.value, TransientError)
    assert_context(caught.value)
    assert sim.stats()["outcomes"] == {fault: 1}


def test_drop_keeps_the_httpx_error_as_cause() -> None:
    sim = make_sim()
    sim.inject("drop")
    with pytest.raises(TransportError) as caught:
        call(sim)
    assert isinstance(caught.value.__cause__, httpx.TransportError)


def test_timeout_is_a_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(TransportError, match="timeout"):
        call(httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("kwargs", "app_id", "message"),
    [
        ({}, "no-such-key", "INVALID_APPLICATION_ID"),
        ({"blocked_keys": {KEY}}, KEY, "APPLICATION_IS_BLOCKED"),
    ],
)
def test_unusable_key(kwargs: dict[str, Any], app_id: str, message: str) -> None:
    sim = make_sim(**kwargs)
    with pytest.raises(KeyUnusable) as caught:
        call(sim, app_id=app_id)
    exc = caught.value
    assert exc.app_id == app_id
    assert exc.api_message == message
    assert not isinstance(exc, TransientError)
    assert_context(exc)


@pytest.fixture
def served_with_ip_rule() -> Iterator[RunningSimulator]:
    sim = make_sim(
        keys={KEY: 1000.0, "here": 1000.0},
        allowed_ips={KEY: {"192.0.2.1"}, "here": {"127.0.0.1"}},
    )
    with serve(sim) as running:
        yield running


def test_invalid_ip_address_over_http(served_with_ip_rule: RunningSimulator) -> None:
    url = served_with_ip_rule.url
    with pytest.raises(KeyUnusable) as caught:
        call(httpx.AsyncHTTPTransport(), app_id=KEY, base_url=url)
    assert caught.value.app_id == KEY
    assert caught.value.api_message == "INVALID_IP_ADDRESS"
    assert caught.value.endpoint == url + "account/info/"
    # the same server accepts a key registered for this machine
    assert list(call(httpx.AsyncHTTPTransport(), app_id="here", base_url=url)) == IDS


def test_method_disabled() -> None:
    sim = make_sim()
    sim.inject("method_disabled")
    with pytest.raises(MethodDisabled) as caught:
        call(sim)
    assert not isinstance(caught.value, TransientError)
    assert caught.value.code == 405
    assert_context(caught.value)


def test_wrong_base_url_is_method_not_found() -> None:
    sim = make_sim()
    with pytest.raises(RequestBug) as caught:
        call(sim, base_url="http://simulator.invalid/wotz/")
    assert caught.value.api_message == "METHOD_NOT_FOUND"
    assert sim.stats()["outcomes"] == {"METHOD_NOT_FOUND": 1}


def test_base_url_without_trailing_slash_still_works() -> None:
    assert list(call(make_sim(), base_url=BASE_URL.rstrip("/"))) == IDS


def test_invalid_account_id() -> None:
    sim = make_sim()
    with pytest.raises(RequestBug) as caught:
        call(sim, [-5, XBOX_MIN])
    assert caught.value.api_message == "INVALID_ACCOUNT_ID"
    assert caught.value.account_ids == (-5, XBOX_MIN)


def test_missing_application_id_is_a_request_bug() -> None:
    with pytest.raises(RequestBug) as caught:
        call(make_sim(), app_id="")
    assert caught.value.api_message == "APPLICATION_ID_NOT_SPECIFIED"
    assert not isinstance(caught.value, KeyUnusable)


def rewrite(sim: Simulator, change: Callable[[dict[str, str]], object]) -> httpx.MockTransport:
    """The simulator behind a transport that edits the form the client sends."""

    def handler(request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.read().decode()))
        change(form)
        return sim.handle(httpx.Request("POST", request.url, data=form))

    return httpx.MockTransport(handler)


def test_list_limit_from_the_simulator_is_a_request_bug() -> None:
    """Bypass the client's own guard to see how it reads the API's answer."""
    sim = make_sim()

    def more_ids(form: dict[str, str]) -> None:
        form["account_id"] = ",".join(str(i) for i in range(XBOX_MIN, XBOX_MIN + 101))

    with pytest.raises(RequestBug) as caught:
        call(rewrite(sim, more_ids))
    assert caught.value.api_message == "ACCOUNT_ID_LIST_LIMIT_EXCEEDED"
    assert sim.stats()["outcomes"] == {"ACCOUNT_ID_LIST_LIMIT_EXCEEDED": 1}


def test_account_id_not_specified_from_the_simulator_is_a_request_bug() -> None:
    sim = make_sim()
    with pytest.raises(RequestBug) as caught:
        call(rewrite(sim, lambda form: form.pop("account_id")))
    assert caught.value.api_message == "ACCOUNT_ID_NOT_SPECIFIED"


@pytest.mark.parametrize(
    ("message", "code", "error"),
    [
        ("REQUEST_LIMIT_EXCEEDED", 407, RequestLimitExceeded),
        ("SOURCE_NOT_AVAILABLE", 504, SourceNotAvailable),
        ("ACCOUNT_ID_LIST_LIMIT_EXCEEDED", 407, RequestBug),
        ("INVALID_APPLICATION_ID", 407, KeyUnusable),
        ("APPLICATION_IS_BLOCKED", 407, KeyUnusable),
        ("INVALID_IP_ADDRESS", 407, KeyUnusable),
        ("INVALID_ACCOUNT_ID", 407, RequestBug),
        ("INVALID_FIELDS", 407, RequestBug),
        ("APPLICATION_ID_NOT_SPECIFIED", 402, RequestBug),
        ("ACCOUNT_ID_NOT_SPECIFIED", 402, RequestBug),
        ("METHOD_NOT_FOUND", 404, RequestBug),
        ("METHOD_DISABLED", 405, MethodDisabled),
        ("SOMETHING_NEW", 499, RequestBug),
    ],
)
def test_every_error_of_the_reference_table(
    message: str, code: int, error: type[WargamingError]
) -> None:
    with pytest.raises(WargamingError) as caught:
        call(crafted(envelope_error(message, code)))
    exc = caught.value
    assert type(exc) is error
    assert (exc.api_message, exc.code) == (message, code)
    assert_context(exc)
    assert message in str(exc)
    if isinstance(exc, KeyUnusable):
        assert exc.app_id == KEY


# -- envelope strictness ------------------------------------------------------------------


def ok(data: Any) -> dict[str, Any]:
    return {"status": "ok", "meta": {"count": 1}, "data": data}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (ok({"5000": None}), 200),  # 5001 asked, missing from data
        (ok({"5000": None, "5001": [1, 2]}), 200),  # not an object
        (ok({"5000": None, "5001": "x"}), 200),
        (ok([None, None]), 200),  # data not a dict
        ({"status": "ok", "meta": {"count": 0}}, 200),  # no data
        ({"status": "weird", "data": {"5000": None, "5001": None}}, 200),
        ({"data": {"5000": None, "5001": None}}, 200),  # no status
        ({"status": "error"}, 200),  # error without an error object
        ({"status": "error", "error": "boom"}, 200),
        ([1, 2, 3], 200),  # not an object
        ("null", 200),
        ("{truncated", 200),
        (b"\xff\xfe", 200),
        ("", 200),
        ("upstream", 502),
        ("slow down", 429),
    ],
)
def test_anything_but_the_api_envelope_is_a_bad_response(body: Any, status: int) -> None:
    with pytest.raises(BadResponse) as caught:
        call(crafted(body, status), [5000, 5001])
    assert caught.value.endpoint == ENDPOINT
    assert caught.value.account_ids == (5000, 5001)


@pytest.mark.parametrize("status", [403, 404, 408, 400, 502])
def test_any_http_status_but_200_is_a_proxy_error_and_transient(status: int) -> None:
    """The API answers its own errors with HTTP 200; another status is a proxy's."""
    with pytest.raises(HttpStatusError, match=f"HTTP {status}") as caught:
        call(crafted("<html>Forbidden</html>", status))
    assert isinstance(caught.value, TransientError) and caught.value.status == status


def test_ids_are_matched_as_strings() -> None:
    """The API keys data by the id as a string; an int-looking near miss does not count."""
    with pytest.raises(BadResponse, match="5001 missing"):
        call(crafted(ok({"5000": None, "05001": None})), [5000, 5001])


class _CountingTransport(httpx.AsyncBaseTransport):
    """The simulator behind a transport that remembers the most requests it had at once."""

    def __init__(self, sim: Simulator) -> None:
        self.inner = sim.transport()
        self.now = self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.01)
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1


@pytest.mark.parametrize("limit", [1, 3, 8])
def test_requests_in_flight_stay_within_the_limit(limit: int) -> None:
    """issue 16: a key's requests wait in the client, never in httpcore's costly queue."""
    transport = _CountingTransport(make_sim())

    async def run() -> list[AccountInfo]:
        async with WargamingClient(BASE_URL, KEY, transport=transport) as client:
            client.limit_in_flight(limit)
            return await asyncio.gather(*(client.account_info(IDS) for _ in range(20)))

    answers = asyncio.run(run())
    assert len(answers) == 20 and all(set(a) == set(IDS) for a in answers)
    assert transport.peak == limit
