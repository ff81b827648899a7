"""The queue-depth collector answers a scrape even when the broker is down."""

from __future__ import annotations

from battletracker.pipeline.queues import QueueDepthCollector
from battletracker.settings import Settings


def test_broker_down_reports_zero_instead_of_failing() -> None:
    collector = QueueDepthCollector(Settings(broker_url="amqp://guest:guest@127.0.0.1:1//"))
    metrics = {m.name: m for m in collector.collect()}
    assert metrics["battletracker_broker_up"].samples[0].value == 0
    assert "battletracker_queue_ready" not in metrics
