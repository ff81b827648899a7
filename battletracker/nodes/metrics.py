"""The node domain's Prometheus metrics: in-process counters and a table-backed collector.

Rejections happen in the server worker's consumer and pool processes; the collector
reads the ``result_rejections`` and ``key_reports`` tables so that the web app's
``/metrics`` shows the totals of every process, across restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # the store guard imports this module in every worker, nodes included
    from sqlalchemy.orm import Session, sessionmaker

__all__ = ["KEY_REPORTS", "REJECTED", "NodeCollector"]

log = logging.getLogger(__name__)

REJECTED = Counter(
    "battletracker_node_results_rejected",
    "Results and messages refused by this process, by reason", ["reason"],
)  # fmt: skip
KEY_REPORTS = Counter("battletracker_node_key_reports",
                      "Keys reported unusable by nodes, received here", ["pool"])  # fmt: skip


class NodeCollector(Collector):
    """Rejections by reason, key reports, and nodes by state, read from the database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        from sqlalchemy import func, select
        from sqlalchemy.exc import SQLAlchemyError

        from .models import KeyReport, Node, ResultRejection

        rejected = CounterMetricFamily(
            "battletracker_results_rejected", "Refused results and messages, by reason",
            labels=["reason"],
        )  # fmt: skip
        reports = CounterMetricFamily("battletracker_key_unusable_reports",
                                      "Reports by nodes that a key is unusable")  # fmt: skip
        nodes = GaugeMetricFamily("battletracker_nodes", "Nodes by state", labels=["state"])
        try:
            with self.sessions() as session:
                for reason, n in session.execute(
                    select(ResultRejection.reason, func.count()).group_by(ResultRejection.reason)
                ):
                    rejected.add_metric([reason], n)
                count = select(func.count(KeyReport.id))
                reports.add_metric([], session.execute(count).scalar_one())
                for state, n in session.execute(
                    select(Node.state, func.count()).group_by(Node.state)
                ):
                    nodes.add_metric([state.value], n)
        except SQLAlchemyError as exc:  # /metrics must answer while the database is down
            log.warning("node metrics: database unreachable: %s", type(exc).__name__)
            return
        yield rejected
        yield reports
        yield nodes
