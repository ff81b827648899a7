"""The web app on the internet: secret key, security headers, proxies, /metrics, guest gate."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from battletracker.settings import Settings
from battletracker.web.app import create_app
from battletracker.web.auth import SESSION_COOKIE
from battletracker.web.cli import web_command
from battletracker.web.deps import PUBLIC_PATHS, PUBLIC_PREFIXES
from battletracker.web.hardening import MAX_BODY
from battletracker.web.metrics import CachedCollector
from battletracker.web.secret import InsecureSecretKey, new_secret_key
from battletracker.web.server import serve_in_thread

from .conftest import METRICS_AUTH, METRICS_TOKEN, OPERATOR

# -- the secret key ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["change-me", "", "short-but-random-9f8e7d",
                                 "change-me-change-me-change-me-change-me",
                                 "a" * 64, "0123456789" * 2, "abc123d" * 8])
def test_default_or_short_secret_key_is_refused(web_settings: Settings, key: str) -> None:
    with pytest.raises(InsecureSecretKey, match="secret_key"):
        create_app(web_settings.replace(secret_key=key))


def test_a_random_hex_key_with_few_different_digits_is_accepted(web_settings: Settings) -> None:
    # 32 hex digits (openssl rand -hex 16) show fewer than 12 different ones 1.7 % of the time
    key = "3a7f0c19e3a70f1c9e3a07f1c93e0a7f"
    assert len(set(key)) == 9
    create_app(web_settings.replace(secret_key=key))


def test_web_command_refuses_the_default_key(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(web_command, [])  # the settings' default: change-me
    assert result.exit_code == 1
    assert "secret_key" in result.output and "new-secret" in result.output
    key = CliRunner().invoke(web_command, ["new-secret"]).output.strip()
    assert len(key) >= 32 and key != new_secret_key()
    create_app(Settings(secret_key=key))  # what it prints is accepted


# -- security headers and cookies -------------------------------------------------------

HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _check_headers(r: httpx.Response) -> None:
    for name, value in HEADERS.items():
        assert r.headers.get(name) == value, (r.request.url, name)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "object-src 'none'" in csp


def test_security_headers_on_every_kind_of_answer(client: TestClient) -> None:
    for path in ("/", "/boards", "/login", "/api/v1/boards", "/api/v1/boards/nope",
                 "/api/v1/players/0", "/no/such/page", "/static/style.css", "/healthz",
                 "/operator", "/api/docs", "/openapi.json", "/metrics"):
        r = client.get(path, follow_redirects=False)
        _check_headers(r)
        assert "strict-transport-security" not in r.headers  # plain http here


def test_secure_cookie_and_hsts_behind_a_trusted_proxy(web_settings: Settings) -> None:
    """Behind TLS at a trusted proxy the cookie is Secure and HSTS is sent; the same
    headers from anyone else are ignored."""
    settings = web_settings.replace(web_trusted_proxies="10.0.0.0/8")
    form = {"username": OPERATOR[0], "password": OPERATOR[1], "next": "/"}
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"}
    app = create_app(settings)
    with TestClient(app, client=("10.1.2.3", 4000), base_url="http://tracker.example") as c:
        r = c.post("/login", data=form, headers=forwarded, follow_redirects=False)
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert r.headers["strict-transport-security"].startswith("max-age=")
    with TestClient(app, client=("198.51.100.7", 4000)) as c:  # not a trusted proxy
        r = c.post("/login", data=form, headers=forwarded, follow_redirects=False)
        assert r.status_code == 303
        assert "Secure" not in r.headers["set-cookie"]
        assert "strict-transport-security" not in r.headers


# -- /metrics ---------------------------------------------------------------------------


def test_metrics_need_the_token(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings)) as c:
        assert c.get("/metrics").status_code == 403
        assert c.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 403
        assert c.get("/metrics", headers={"authorization": METRICS_TOKEN}).status_code == 403
        r = c.get("/metrics", headers=METRICS_AUTH)
        assert r.status_code == 200 and "battletracker_database_up" in r.text


def test_metrics_from_an_internal_address_only_when_direct(web_settings: Settings) -> None:
    """Over a real socket from 127.0.0.1 (metrics_networks' default) no token is needed;
    a request relayed by a proxy on the same host is not internal."""
    handle = serve_in_thread(web_settings.replace(metrics_token=""))
    try:
        assert httpx.get(f"{handle.url}/metrics").status_code == 200
        relayed = httpx.get(f"{handle.url}/metrics", headers={"x-forwarded-for": "203.0.113.9"})
        assert relayed.status_code == 403
    finally:
        handle.stop()
    handle = serve_in_thread(web_settings.replace(metrics_networks="10.0.0.0/8"))
    try:
        assert httpx.get(f"{handle.url}/metrics").status_code == 403
    finally:
        handle.stop()


class CountingBroker(Collector):
    """Stands for the queue-depth collector: counts how often the "broker" is read."""

    def __init__(self) -> None:
        self.reads = 0

    def collect(self):  # type: ignore[no-untyped-def]
        self.reads += 1
        g = GaugeMetricFamily("battletracker_queue_ready", "ready", labels=["queue"])
        g.add_metric(["fetch"], self.reads)
        yield g


def test_broker_reading_is_cached(web_settings: Settings) -> None:
    broker = CountingBroker()
    with TestClient(create_app(web_settings, extra_collectors=[broker])) as c:
        for _ in range(5):
            r = c.get("/metrics", headers=METRICS_AUTH)
            assert 'battletracker_queue_ready{queue="fetch"} 1.0' in r.text
    assert broker.reads == 1
    now = [0.0]
    cached = CachedCollector(broker, ttl=10, clock=lambda: now[0])
    list(cached.collect())
    list(cached.collect())
    now[0] = 10.5
    list(cached.collect())
    assert cached.readings == 2


# -- the guest gate ---------------------------------------------------------------------


def _example_path(path: str) -> str:
    examples = {"board": "battles", "account_id": "5000", "date": "2026-03-14"}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: examples.get(m.group(1), "1"), path)


def test_every_data_route_is_behind_the_guest_gate(web_settings: Settings) -> None:
    """Enumerates the app's routes, so a route added later cannot slip past: with the guest
    login on, an anonymous visitor gets 401 (API) or a redirect to /login (pages) from
    every route but the login and monitoring ones."""
    app = create_app(web_settings.replace(guest_login=True, guest_password="g" * 12))
    routes = [(ctx.path, ctx.original_route) for ctx in iter_route_contexts(app.routes)
              if isinstance(ctx.original_route, APIRoute) and ctx.path]
    public = {p for p, _ in routes if p in PUBLIC_PATHS or p.startswith(PUBLIC_PREFIXES)}
    assert public == {"/login", "/logout", "/auth/wargaming", "/auth/wargaming/callback",
                      "/healthz", "/metrics"} | {p for p in public if p.startswith(PUBLIC_PREFIXES)}
    gated = [(p, r) for p, r in routes if p not in public]
    assert len(gated) >= 20, [p for p, _ in gated]  # the API, pages, feed, reports, explorer
    with TestClient(app) as c:
        for path, route in gated:
            for method in sorted(route.methods - {"HEAD"}):
                r = c.request(method, _example_path(path), follow_redirects=False)
                if path.startswith("/api/v1/") or path == "/openapi.json":
                    assert r.status_code == 401, (method, path, r.status_code)
                else:
                    assert r.status_code == 303, (method, path, r.status_code)
                    assert r.headers["location"].startswith("/login?next="), path
        # and the same routes open to a guest who logged in
        assert c.post("/login", data={"username": "guest", "password": "g" * 12},
                      follow_redirects=False).status_code == 303
        assert c.cookies.get(SESSION_COOKIE)
        for path, route in gated:
            if "GET" in route.methods and path not in ("/operator", "/me"):
                r = c.get(_example_path(path), follow_redirects=False)
                assert r.status_code not in (401, 303), (path, r.status_code)


# -- request bodies ---------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_declared_or_streamed(web_settings: Settings) -> None:
    """Anyone may post to the node API: a body over 1 MiB is answered 413 whether its
    length is declared or it is streamed without one (before, 5 MB were read and parsed),
    counted in /metrics, and honest requests go on being served."""
    url = "/api/v1/nodes/register"
    json_type = {"content-type": "application/json"}

    def stream() -> Iterator[bytes]:  # chunked: no Content-Length to judge by
        yield b'{"name": "'
        for _ in range(MAX_BODY // 65_536 + 1):
            yield b"x" * 65_536
        yield b'"}'

    handle = serve_in_thread(web_settings)
    try:
        with httpx.Client(base_url=handle.url, timeout=30) as c:
            declared = c.post(url, content=b"x" * (MAX_BODY + 1), headers=json_type)
            streamed = c.post(url, content=stream(), headers=json_type)
            honest = c.post(url, json={"name": "honest"})
            metrics = c.get("/metrics", headers=METRICS_AUTH).text
    finally:
        handle.stop()
    assert declared.status_code == 413, declared.text
    assert declared.headers["x-frame-options"] == "DENY"
    assert streamed.status_code == 413, streamed.text
    assert honest.status_code == 201, honest.text
    refused = [line for line in metrics.splitlines()
               if line.startswith("battletracker_http_requests_total") and 'status="413"' in line]
    assert refused and sum(float(line.rsplit(" ", 1)[1]) for line in refused) == 2
