"""The simulated API itself: one strict request handler shared by MockTransport and HTTP.

All logic lives in :meth:`Simulator.respond`, which turns a request's parts into a
:class:`Reply` and does no I/O. :meth:`Simulator.handle` and :class:`SimulatorTransport`
adapt it to httpx (raising the transport error a dropped connection would cause), and
:mod:`.server` adapts it to a real socket (sleeping, then closing without an answer).

The order of checks mirrors a gateway in front of the real service: route, injected
transport faults, key checks, the rate limit (which takes a token), upstream faults,
then the request's own parameters. So a request refused for its key or rate never
costs a token, and a request answered SOURCE_NOT_AVAILABLE did.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx

from .control import control
from .faults import FaultPlan, Faults
from .fields import MAX_FIELDS, FieldSelector
from .limits import KeyLimit, SlidingWindow, TokenBucket
from .population import Population
from .replies import Reply, api_error, json_reply, key_error, to_response
from .signin import SignIn, private_block

__all__ = [
    "API_PREFIX",
    "FIELDS_LIMIT_MESSAGE",
    "MAX_IDS",
    "Simulator",
    "SimulatorTransport",
]

#: Path prefix of the console API; the base URL of a simulator ends with it.
API_PREFIX = "/wotx/"
#: At most this many ids per ``account/info`` request.
MAX_IDS = 100
#: The real name of the "too many fields" error is undocumented; this is our best guess.
FIELDS_LIMIT_MESSAGE = "INVALID_FIELDS"
_TEXT = (("content-type", "text/plain"),)
_GARBAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
#: Refusals for the rate limit whose times ``stats()`` keeps (the first ones).
_LIMITED_KEPT = 50


class Simulator:
    """A strict, deterministic ``account/info`` (and sign-in) of the console API.

    Arguments:
        population: the accounts served; ``day`` picks which day of it.
        keys: application_id -> requests per second (default ``{"demo": 20.0}``). Each key
            gets a token bucket of that capacity refilled at that rate, using ``clock``.
        blocked_keys: keys answered APPLICATION_IS_BLOCKED (listed in ``keys`` or not).
        allowed_ips: server keys -> the IPs they may be used from; other keys work from
            anywhere. Only the HTTP server knows the caller's IP, so in-process requests
            pass unless ``handle(request, client_ip=...)`` names one.
        faults: random fault rates and latency; ``inject`` scripts exact faults.
        strict_window: count each key's requests in a sliding one-second window (refused
            ones too) instead of a token bucket: the strictest reading of "N requests per
            second", which the real API does not document (see :mod:`.limits`).
        clock: monotonic seconds for the rate limit; inject a fake one in tests.

    ``access_token`` is checked (:meth:`.signin.SignIn.owner`) and opens ``private`` for
    the token's own account only. Not reproduced: ``language`` is ignored, paths must
    match exactly (trailing slash included), and the error for more than 100 ``fields``
    is named :data:`FIELDS_LIMIT_MESSAGE` because the real name is undocumented.
    """

    def __init__(
        self,
        population: Population,
        *,
        keys: Mapping[str, float] | None = None,
        blocked_keys: Iterable[str] = (),
        allowed_ips: Mapping[str, set[str]] | None = None,
        faults: Faults | None = None,
        day: int = 0,
        strict_window: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.population = population
        #: application_id -> requests per second. Server keys appear in ``allowed_ips``.
        self.keys = dict(keys if keys is not None else {"demo": 20.0})
        self.blocked_keys = frozenset(blocked_keys)
        #: Keys listed here answer INVALID_IP_ADDRESS to other IPs (HTTP server only);
        #: keys not listed are "standalone" keys usable from anywhere.
        self.allowed_ips = dict(allowed_ips) if allowed_ips is not None else None
        self.faults = FaultPlan(faults)
        self.day = day
        self.clock = clock
        self.strict_window = strict_window
        self.signin = SignIn(self)
        self._buckets = {key: self._new_limit(rps) for key, rps in self.keys.items()}
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._by_key: Counter[str] = Counter()
        self._outcomes: Counter[str] = Counter()
        #: clock() of the first and the last accepted API request (the fetch window)
        self._ok_span: list[float] = []
        #: clock() of the first refusals for the rate limit (when an overrun happened)
        self._limited_at: list[float] = []

    @property
    def day(self) -> int:
        """The population day being served; set it to let a night pass."""
        return self._day

    @day.setter
    def day(self, value: int) -> None:
        if value < 0:
            raise ValueError("day must be >= 0")
        self._day = value

    @property
    def login_account(self) -> int | None:
        """The account ``auth/login`` signs in (None: the lowest existing Xbox id)."""
        return self.signin.account_id

    @login_account.setter
    def login_account(self, value: int | None) -> None:
        self.signin.account_id = value

    def inject(self, fault: str, count: int = 1) -> None:
        """Force the next ``count`` API requests to fail with ``fault`` (see FAULT_KINDS)."""
        self.faults.inject(fault, count)

    def stats(self) -> dict[str, Any]:
        """Counters since start: requests, per key, per outcome, ids and accounts served."""
        with self._lock:
            return {
                "requests": self._counts["requests"],
                "by_key": dict(self._by_key),
                "outcomes": dict(self._outcomes),
                "ids_served": self._counts["ids_served"],
                "accounts_served": self._counts["accounts_served"],
                "day": self.day,
                "limit": "window" if self.strict_window else "bucket",
                #: the most requests (refused included) any key got within one second
                "peak_per_second": {k: b.peak for k, b in self._buckets.items()},
                #: strict window only: mean seconds for a key's slot to come round
                "slot_cycle": {k: getattr(b, "slot_cycle", None) for k, b in self._buckets.items()},
                "ok_span": list(self._ok_span),
                "limited_at": list(self._limited_at),
            }

    def count(self, outcome: str, key: str | None = None, ids: int = 0, accounts: int = 0) -> None:
        """Record one API request's outcome (thread-safe)."""
        with self._lock:
            self._counts["requests"] += 1
            self._counts["ids_served"] += ids
            self._counts["accounts_served"] += accounts
            self._outcomes[outcome] += 1
            if outcome == "limit" and len(self._limited_at) < _LIMITED_KEPT:
                self._limited_at.append(self.clock())
            if outcome == "ok":
                now = self.clock()
                self._ok_span[1:] = [now]
                if len(self._ok_span) == 1:
                    self._ok_span.insert(0, now)
            if key is not None:
                self._by_key[key] += 1

    def _new_limit(self, rps: float) -> KeyLimit:
        if self.strict_window:
            return SlidingWindow(rps, self.clock)
        return TokenBucket(rps, self.clock)

    def _bucket(self, key: str) -> KeyLimit:
        """The key's limit, made on first use so keys added to ``keys`` later work too."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or bucket.rate != self.keys[key]:
                bucket = self._buckets[key] = self._new_limit(self.keys[key])
            return bucket

    # -- adapters ----------------------------------------------------------------------

    def handle(self, request: httpx.Request, client_ip: str | None = None) -> httpx.Response:
        """Answer an httpx request synchronously (sleeping for latency, raising on drops)."""
        reply = self.reply_to(request, client_ip)
        if reply.delay:
            time.sleep(reply.delay)
        return to_response(reply, request)

    def reply_to(self, request: httpx.Request, client_ip: str | None = None) -> Reply:
        """The :class:`Reply` to an httpx request, whose body must have been read."""
        return self.respond(request.method, request.url.path, request.url.query.decode(),
                            request.read(), request.headers.get("content-type", ""), client_ip)

    def transport(self) -> SimulatorTransport:
        """A transport for ``httpx.Client`` and ``httpx.AsyncClient`` alike."""
        return SimulatorTransport(self)

    # -- the API -----------------------------------------------------------------------

    def respond(self, method: str, path: str, query: str, body: bytes = b"",
                content_type: str = "", client_ip: str | None = None,
                arrived: float | None = None) -> Reply:
        """Answer one request given its parts; no I/O, safe to call from many threads.

        ``arrived`` is ``clock()`` when the request reached the server (default: now);
        the rate limit counts the request from then.
        """
        params = dict(parse_qsl(query, keep_blank_values=True))
        if method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if path.startswith("/_sim/"):
            return control(self, method, path, body)
        if method in ("GET", "POST") and path == API_PREFIX + "account/info/":
            return self._account_info(params, client_ip, arrived)
        if method == "GET" and path == API_PREFIX + "auth/login/":
            return self.signin.login(params, client_ip)
        if method in ("GET", "POST") and path == API_PREFIX + "auth/logout/":
            return self.signin.logout(params, client_ip)
        self.count("METHOD_NOT_FOUND", params.get("application_id") or None)
        return api_error("METHOD_NOT_FOUND", 404)

    def check_key(self, params: Mapping[str, str], client_ip: str | None) -> str | None:
        """The error message for an unusable ``application_id``, or None if it may be used."""
        key = params.get("application_id", "")
        if not key:
            return "APPLICATION_ID_NOT_SPECIFIED"
        if key in self.blocked_keys:
            return "APPLICATION_IS_BLOCKED"
        if key not in self.keys:
            return "INVALID_APPLICATION_ID"
        allowed = None if self.allowed_ips is None else self.allowed_ips.get(key)
        if allowed is not None and client_ip is not None and client_ip not in allowed:
            return "INVALID_IP_ADDRESS"
        return None

    def _account_info(self, params: dict[str, str], client_ip: str | None,
                      arrived: float | None = None) -> Reply:
        fault = self.faults.next_fault()
        delay = self.faults.delay()
        outcome, reply, data = self._account_info_reply(params, client_ip, fault, arrived)
        if isinstance(data, tuple):  # a templated answer: (ids, accounts) counted already
            ids, accounts = data
        else:
            ids, accounts = len(data), sum(v is not None for v in data.values())
        self.count(outcome, params.get("application_id") or None, ids, accounts)
        return Reply(reply.status, reply.body, reply.headers, reply.drop, delay)

    def _account_info_reply(
        self, params: dict[str, str], client_ip: str | None, fault: str | None,
        arrived: float | None = None,
    ) -> tuple[str, Reply, dict[str, Any] | tuple[int, int]]:
        """(outcome for the stats, reply, the data answered) of one account/info request."""
        if fault == "drop":
            return fault, Reply(0, drop=True), {}
        if fault == "http_500":
            return fault, Reply(500, b"Internal Server Error", _TEXT), {}
        if fault == "garbage":
            return fault, Reply(200, _GARBAGE, (("content-type", "text/html"),)), {}
        if fault == "method_disabled":
            return _fail("METHOD_DISABLED", 405)
        refused = self.check_key(params, client_ip)
        if refused is not None:
            return refused, key_error(refused), {}
        if fault == "request_limit" or not self._bucket(params["application_id"]).take(arrived):
            return "limit", api_error("REQUEST_LIMIT_EXCEEDED", 407), {}
        if fault == "source_unavailable":
            return _fail("SOURCE_NOT_AVAILABLE", 504)
        tokens = [t.strip() for t in params.get("account_id", "").split(",") if t.strip()]
        if not tokens:
            return _fail("ACCOUNT_ID_NOT_SPECIFIED", 402, "account_id")
        if len(tokens) > MAX_IDS:
            return _fail("ACCOUNT_ID_LIST_LIMIT_EXCEEDED", 407, "account_id")
        bad = next((t for t in tokens if not t.isascii() or not t.isdigit() or len(t) > 18), None)
        if bad is not None:
            return _fail("INVALID_ACCOUNT_ID", 407, "account_id", bad)
        selector = FieldSelector(params.get("fields"))
        if len(selector) > MAX_FIELDS:
            return _fail(FIELDS_LIMIT_MESSAGE, 407, "fields", params.get("fields"))
        owner = None
        if params.get("access_token"):  # a token it did not issue (to this key) is an error
            owner = self.signin.owner(params["access_token"], params["application_id"])
            if owner is None:
                return _fail("INVALID_ACCESS_TOKEN", 407, "access_token")
        day = self.day
        render = getattr(self.population, "render", None)
        if render is not None:  # TemplatePopulation: the fast path of capacity benchmarks
            ids = list(dict.fromkeys(int(t) for t in tokens))
            text, found = render(ids, day, selector)
            body = f'{{"status":"ok","meta":{{"count":{len(ids)}}},"data":{text}}}'
            return "ok", Reply(200, body.encode()), (len(ids), found)
        data: dict[str, Any] = {}
        for account_id in dict.fromkeys(int(t) for t in tokens):  # duplicates answered once
            account = self.population.account(account_id, day)
            if account is not None and account_id == owner:
                account = {**account, "private": private_block(account)}
            data[str(account_id)] = None if account is None else selector.apply(account)
        return "ok", json_reply({"status": "ok", "meta": {"count": len(data)}, "data": data}), data


def _fail(message: str, code: int, field: str | None = None,
          value: Any = None) -> tuple[str, Reply, dict[str, Any]]:
    return message, api_error(message, code, field, value), {}


class SimulatorTransport(httpx.MockTransport):
    """MockTransport whose async side sleeps for latency without blocking the event loop."""

    def __init__(self, simulator: Simulator) -> None:
        super().__init__(simulator.handle)
        self.simulator = simulator

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` for an ``httpx.AsyncClient``."""
        await request.aread()
        reply = self.simulator.reply_to(request)
        if reply.delay:
            await anyio.sleep(reply.delay)
        return to_response(reply, request)
