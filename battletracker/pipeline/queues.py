"""Queue depth read from the broker at scrape time: a Prometheus collector for the web app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import kombu
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..app import QUEUES
from ..settings import Settings

__all__ = ["QueueDepthCollector", "queue_depths"]

log = logging.getLogger(__name__)


def queue_depths(broker_url: str, *, timeout: float = 2.0) -> dict[str, tuple[int, int]]:
    """``{queue: (ready messages, consumers)}`` of the pipeline's queues.

    A queue nobody declared yet (no worker has started) counts as empty. A failed
    passive declare closes its AMQP channel, hence one channel per queue.
    """
    out = {}
    with kombu.Connection(broker_url, connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1)
        for queue in QUEUES:
            channel = conn.channel()
            try:
                _, ready, consumers = channel.queue_declare(queue=queue, passive=True)
                out[queue] = (int(ready), int(consumers))
            except conn.channel_errors:
                out[queue] = (0, 0)
            finally:
                with contextlib.suppress(*conn.channel_errors, *conn.connection_errors):
                    channel.close()
    return out


class QueueDepthCollector(Collector):
    """``battletracker_queue_ready`` / ``_consumers`` per queue, ``battletracker_broker_up``."""

    def __init__(self, settings: Settings) -> None:
        self.broker_url = settings.broker_url

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("battletracker_broker_up", "The broker answered the scrape")
        ready = GaugeMetricFamily(
            "battletracker_queue_ready", "Messages waiting in a queue", labels=["queue"]
        )
        consumers = GaugeMetricFamily(
            "battletracker_queue_consumers", "Consumers of a queue", labels=["queue"]
        )
        try:
            depths = queue_depths(self.broker_url)
        except Exception as exc:  # a scrape must answer even with the broker down
            log.warning("queue depth unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for queue, (n, c) in depths.items():
            ready.add_metric([queue], n)
            consumers.add_metric([queue], c)
        yield from (up, ready, consumers)
