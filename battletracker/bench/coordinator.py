"""The coordinator (issue point 5): a full night of chunks for the real ranges, < 10 s.

``start_cycle`` as the beat runs it: the cycle and its chunk rows for the default ranges
(~27 M ids in chunks of ``chunk_size``), then every chunk published to the fetch queue of
a real RabbitMQ vhost with its dispatch token, on one connection. The reference is a
raw kombu publish of as many messages of the same size on one connection, in the same
run: what the broker and the client library cost alone.
"""

from __future__ import annotations

import json
import time

from kombu import Connection, Exchange, Queue
from sqlalchemy import text

from ..db import engine_for
from ..settings import Settings
from ..web.secret import new_secret_key
from .report import Figure, Outcome
from .services import rabbit_vhost

__all__ = ["run"]


def _raw_publish(broker: str, count: int, body: str) -> float:
    exchange = Exchange("bench", type="direct", durable=True)
    queue = Queue("bench", exchange, routing_key="bench", durable=True)
    with Connection(broker) as conn:
        producer = conn.Producer(serializer="json")
        t0 = time.perf_counter()
        for _ in range(count):
            producer.publish(
                body,
                exchange=exchange,
                routing_key="bench",
                declare=[queue],
                delivery_mode=2,
                content_type="application/json",
                content_encoding="utf-8",
            )
        return time.perf_counter() - t0


def run(*, chunk_size: int = 10_000) -> Outcome:
    """Create and publish the night of the default (real) ranges."""
    from ..app import configure
    from ..pipeline.tasks import start_cycle
    from ..testing.databases import temporary_database

    outcome = Outcome("coordinator", {"chunk_size": chunk_size})
    started = time.monotonic()
    base = Settings()
    with temporary_database(base, prefix="bt_bench") as db, rabbit_vhost() as broker:
        settings = db.replace(
            broker_url=broker, chunk_size=chunk_size, secret_key=new_secret_key()
        )
        configure(settings)
        t0 = time.perf_counter()
        answer = start_cycle("2026-03-03")
        ours = time.perf_counter() - t0
        with engine_for(settings).connect() as conn:
            chunks, ids = conn.execute(text("SELECT chunks_total, ids_total FROM cycles")).one()
            dispatched = conn.execute(
                text("SELECT count(*) FROM chunks WHERE status = 'dispatched'")
            ).scalar_one()
        body = json.dumps(
            [
                [
                    {
                        "chunk_id": 1,
                        "cycle_id": 1,
                        "platform": "xbox",
                        "first_id": 5000,
                        "last_id": 14999,
                        "attempt": 1,
                        "token": "x" * 64,
                    }
                ],
                {},
                {},
            ]
        )
        reference = _raw_publish(broker, int(chunks), body)
    outcome.add(
        Figure(
            "create + publish a night (s)",
            ours,
            "s",
            reference=reference,
            reference_label="raw kombu publish of as many messages",
        )
    ).below(10)
    outcome.add(
        Figure(
            "chunks published",
            answer["published"],
            reference=chunks,
            reference_label="chunks in the cycle",
        )
    ).equals(chunks)
    outcome.add(Figure("chunks marked dispatched", dispatched)).equals(chunks)
    outcome.notes.append(f"{chunks:,} chunks over {ids:,} ids (the default ranges)")
    outcome.seconds = time.monotonic() - started
    return outcome
