"""/metrics (own registry, request counts, cycle gauges read at scrape time) and /healthz."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from battletracker.settings import Settings
from battletracker.web.app import create_app
from battletracker.web.secret import new_secret_key

from .conftest import METRICS_AUTH, METRICS_TOKEN


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class QueueDepth(Collector):
    def collect(self):  # type: ignore[no-untyped-def]
        g = GaugeMetricFamily("battletracker_queue_depth", "messages", labels=["queue"])
        g.add_metric(["fetch"], 42)
        yield g


def test_metrics(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings, extra_collectors=[QueueDepth()])) as c:
        for _ in range(3):
            assert c.get("/api/v1/boards/battles").status_code == 200
        assert c.get("/api/v1/boards/nope").status_code == 404
        assert c.get("/api/v1/players/0").status_code == 422
        assert c.get("/no/such/page").status_code == 404
        r = c.get("/metrics", headers=METRICS_AUTH)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        s = _samples(r.text)
    date = (("date", "2026-03-15"),)
    assert s[("battletracker_http_requests_total", (
        ("method", "GET"), ("route", "/api/v1/boards/{board}"), ("status", "200")))] == 3
    assert s[("battletracker_http_requests_total", (
        ("method", "GET"), ("route", "/api/v1/boards/{board}"), ("status", "404")))] == 1
    assert s[("battletracker_http_requests_total", (
        ("method", "GET"), ("route", "/api/v1/players/{account_id}"), ("status", "422")))] == 1
    assert s[("battletracker_http_requests_total", (
        ("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert s[("battletracker_database_up", ())] == 1
    assert s[("battletracker_cycle_chunks_total", date)] == 40
    assert s[("battletracker_cycle_chunks_stored", date)] == 25
    assert s[("battletracker_cycle_accounts", date)] == 9000
    assert s[("battletracker_cycle_chunks", (*date, ("status", "failed")))] == 1
    assert s[("battletracker_cycle_status", (*date, ("status", "fetching")))] == 1
    assert s[("battletracker_cycle_nodes_online", date)] == 3
    assert s[("battletracker_queue_depth", (("queue", "fetch"),))] == 42


def test_each_app_has_its_own_registry(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings)) as a, TestClient(create_app(web_settings)) as b:
        a.get("/api/v1/boards")
        key = ("battletracker_http_requests_total",
               (("method", "GET"), ("route", "/api/v1/boards"), ("status", "200")))
        assert _samples(a.get("/metrics", headers=METRICS_AUTH).text)[key] == 1
        assert key not in _samples(b.get("/metrics", headers=METRICS_AUTH).text)


def test_healthz(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings)) as c:
        r = c.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok"}


def test_healthz_and_metrics_without_database() -> None:
    down = Settings(database_url="postgresql://postgres@127.0.0.1:9/nowhere",
                    secret_key=new_secret_key(), metrics_token=METRICS_TOKEN)
    with TestClient(create_app(down)) as c:
        r = c.get("/healthz")
        assert r.status_code == 503
        assert r.json() == {"status": "unavailable", "database": "unreachable"}
        m = c.get("/metrics", headers=METRICS_AUTH)
        assert m.status_code == 200
        assert _samples(m.text)[("battletracker_database_up", ())] == 0
