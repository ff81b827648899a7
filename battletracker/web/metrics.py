"""Prometheus metrics of the web app: requests by route and status, cycle progress gauges.

Each app gets its own :class:`CollectorRegistry` (never the process-global one), so two
apps in one process (tests, the demo) do not share or clash on metrics. Cycle gauges are
read from the database at scrape time by a custom collector, so they are never stale and
cost nothing between scrapes. The pipeline adds its own collectors (queue depth…) through
``create_app(extra_collectors=...)``; their readings are cached for
:data:`EXTRA_TTL` seconds (:class:`CachedCollector`), so scrapes in quick succession, or
many at once, open one broker connection between them, not one each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..models import CycleStatus
from . import progress

__all__ = [
    "EXTRA_TTL",
    "CachedCollector",
    "CycleCollector",
    "HttpMetrics",
    "MetricsMiddleware",
    "build_registry",
]

#: Seconds a reading of an extra collector (the broker's queue depths) is reused.
EXTRA_TTL = 10.0

log = logging.getLogger(__name__)


class HttpMetrics:
    """The request counter and latency histogram of one app."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "battletracker_http_requests", "HTTP requests by route template and status",
            ["method", "route", "status"], registry=registry)
        self.latency = Histogram(
            "battletracker_http_request_duration_seconds", "Request latency by route",
            ["route"], registry=registry)


def _route_of(scope: Scope) -> str:
    """The matched route's template (``/api/v1/players/{account_id}``), never the raw
    path, so that the label's cardinality stays bounded whatever clients request."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP response, including errors."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_of(scope)
            self.metrics.requests.labels(scope.get("method", ""), route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


class CycleCollector(Collector):
    """Cycle progress gauges, queried when Prometheus scrapes."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def describe(self) -> Iterable[Metric]:
        return []  # metrics are dynamic; do not query the database at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("battletracker_database_up",
                               "1 when the web app could read the database at scrape time")
        try:
            with self.sessions() as session:
                cycle = progress.current_cycle(session)
                prog = progress.progress_of(session, cycle) if cycle is not None else None
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreachable: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if prog is None:
            return
        labels = ["date"]
        date = [prog.date.isoformat()]
        gauges: list[tuple[str, str, Any]] = [
            ("battletracker_cycle_chunks_total", "Chunks of the current cycle",
             prog.chunks_total),
            ("battletracker_cycle_chunks_stored", "Chunks stored in the current cycle",
             prog.chunks_stored),
            ("battletracker_cycle_accounts", "Accounts fetched in the current cycle",
             prog.accounts),
            ("battletracker_cycle_ids_total", "Account ids the current cycle covers",
             prog.ids_total),
            ("battletracker_cycle_progress_ratio", "chunks_stored / chunks_total",
             prog.fraction),
            ("battletracker_cycle_nodes_online",
             "Node names active on the current cycle in the last 15 minutes",
             prog.nodes_online),
        ]
        for name, doc, value in gauges:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(date, float(value))
            yield g
        if prog.eta_seconds is not None:
            g = GaugeMetricFamily("battletracker_cycle_eta_seconds",
                                  "Estimated seconds until every chunk is stored",
                                  labels=labels)
            g.add_metric(date, prog.eta_seconds)
            yield g
        by_status = GaugeMetricFamily("battletracker_cycle_chunks",
                                      "Chunks of the current cycle by status",
                                      labels=["date", "status"])
        for status, n in prog.chunks.model_dump().items():
            by_status.add_metric([date[0], status], n)
        yield by_status
        state = GaugeMetricFamily("battletracker_cycle_status",
                                  "1 for the current cycle's status", labels=["date", "status"])
        for s in CycleStatus:
            state.add_metric([date[0], s.value], 1.0 if s.value == prog.status else 0.0)
        yield state


class CachedCollector(Collector):
    """Serves ``inner``'s last reading for ``ttl`` seconds; one reading at a time."""

    def __init__(self, inner: Collector, *, ttl: float = EXTRA_TTL,
                 clock: Any = time.monotonic) -> None:
        self.inner = inner
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._metrics: list[Metric] = []
        self._read_at: float | None = None
        #: How many times ``inner`` was read (tests check the cache with it).
        self.readings = 0

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # a scrape arriving during a reading waits for it and shares it
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl:
                self._metrics = list(self.inner.collect())
                self._read_at = now
                self.readings += 1
            metrics = self._metrics
        yield from metrics


def build_registry(sessions: sessionmaker[Session],
                   extra_collectors: Iterable[Collector] = ()) -> tuple[CollectorRegistry,
                                                                         HttpMetrics]:
    registry = CollectorRegistry(auto_describe=False)
    metrics = HttpMetrics(registry)
    registry.register(CycleCollector(sessions))
    for collector in extra_collectors:
        registry.register(CachedCollector(collector))
    return registry, metrics
