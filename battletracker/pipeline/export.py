"""Export one cycle to Elasticsearch (daily indices and ``players``) for Kibana.

Rows stream from PostgreSQL through a server-side cursor into ``helpers.streaming_bulk``,
one generator feeding the next, so memory stays bounded by ``chunk_size`` however large
the day is. Documents are keyed by account id: exporting a cycle again overwrites its
documents instead of duplicating them, which makes the stage safe to re-run.

Item failures (a rejected document) are counted in the :class:`ExportReport`; failures of
the exchange itself (connection, timeout, a whole bulk request refused) raise
:class:`ExportError`, chained to the client's exception.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError, helpers
from sqlalchemy import Connection, select

from ..db import engine_for
from ..elastic.client import connect
from ..elastic.templates import INDEX_TEMPLATES, PLAYERS_INDEX, alias_day, daily_index, install
from ..models import COUNTERS, Cycle, DiffBattles, Player, TotalBattles
from ..settings import Settings, mask_url

__all__ = [
    "INDEX_TEMPLATES",
    "PLAYERS_INDEX",
    "CycleNotFound",
    "ExportError",
    "ExportReport",
    "ItemError",
    "cycle_id_of",
    "daily_index",
    "export_cycle",
]

log = logging.getLogger(__name__)

#: Item errors kept in a report; the rest are only counted, so a bad night stays small.
MAX_REPORTED_ERRORS = 20

Doc = dict[str, Any]
_DailyTable = type[TotalBattles] | type[DiffBattles]


class ExportError(Exception):
    """The export could not talk to Elasticsearch, or items failed and that was asked about."""


class CycleNotFound(ExportError, LookupError):
    """No cycle has the given id: a caller's mistake, not worth a retry."""


@dataclass(frozen=True)
class ItemError:
    """One document Elasticsearch rejected."""

    index: str
    doc_id: str
    status: int
    type: str
    reason: str


@dataclass(frozen=True)
class ExportReport:
    """What one export wrote: documents and failures per index, the first item errors."""

    cycle_id: int
    date: dt.date | None = None
    #: Why nothing was exported (``"no elasticsearch_url"``), else None.
    skipped: str | None = None
    #: Index name -> documents written (created or overwritten).
    documents: Mapping[str, int] = field(default_factory=dict)
    #: Index name -> documents rejected; only indices with failures appear.
    failed: Mapping[str, int] = field(default_factory=dict)
    #: The first :data:`MAX_REPORTED_ERRORS` item errors, in order.
    errors: tuple[ItemError, ...] = ()
    #: Templates that were (re)installed; empty when they were already current.
    templates_installed: tuple[str, ...] = ()
    #: Whether the lifecycle policy was (re)installed.
    policy_installed: bool = False

    @property
    def indices(self) -> tuple[str, ...]:
        """Indices that received at least one document."""
        return tuple(name for name, n in self.documents.items() if n)

    @property
    def ok(self) -> bool:
        return not any(self.failed.values())

    def raise_for_errors(self) -> None:
        """Raise :class:`ExportError` if any document was rejected (for a task to retry)."""
        if self.ok:
            return
        message = (f"cycle {self.cycle_id}: {sum(self.failed.values())} document(s) "
                   f"rejected ({dict(self.failed)})")
        if self.errors:
            e = self.errors[0]
            message += f"; first: {e.index}/{e.doc_id} {e.status} {e.type}: {e.reason}"
        raise ExportError(message)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``cycles.notes`` and logs."""
        return {
            "cycle_id": self.cycle_id,
            "date": self.date.isoformat() if self.date else None,
            "skipped": self.skipped,
            "documents": dict(self.documents),
            "failed": dict(self.failed),
            "errors": [vars(e) for e in self.errors],
            "templates_installed": list(self.templates_installed),
            "policy_installed": self.policy_installed,
        }


# -- rows -> documents -> actions ---------------------------------------------------------


def _iso_epoch(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _value(v: Any) -> Any:
    return getattr(v, "value", v)  # enums by value, as the database stores them


def _daily_actions(
    conn: Connection, model: _DailyTable, date: dt.date, chunk_size: int
) -> Iterator[Doc]:
    index = daily_index(str(model.__tablename__), date)
    cols = [model.account_id, model.platform, *(getattr(model, c) for c in COUNTERS)]
    stmt = select(*cols).where(model.date == date)
    for row in conn.execution_options(yield_per=chunk_size).execute(stmt):
        doc: Doc = {"account_id": row.account_id, "date": date.isoformat(),
                    "platform": _value(row.platform)}
        doc.update((c, getattr(row, c)) for c in COUNTERS)
        yield {"_op_type": "index", "_index": index, "_id": str(row.account_id), "_source": doc}


def _player_actions(conn: Connection, date: dt.date, chunk_size: int) -> Iterator[Doc]:
    """Players whose ``last_seen`` is the cycle's date: new or changed that day."""
    p = Player
    cols = [p.account_id, p.platform, p.nickname, p.created_at, p.last_battle_time,
            p.last_seen, *(getattr(p, c) for c in COUNTERS)]
    stmt = select(*cols).where(p.last_seen == date)
    for row in conn.execution_options(yield_per=chunk_size).execute(stmt):
        doc: Doc = {
            "account_id": row.account_id,
            "platform": _value(row.platform),
            "nickname": row.nickname,
            "created_at": _iso_epoch(row.created_at),
            "last_battle_time": _iso_epoch(row.last_battle_time),
            "last_seen": row.last_seen.isoformat(),
        }
        doc.update((c, getattr(row, c)) for c in COUNTERS)
        yield {"_op_type": "index", "_index": PLAYERS_INDEX, "_id": str(row.account_id),
               "_source": doc}


def _actions(conn: Connection, date: dt.date, chunk_size: int) -> Iterator[Doc]:
    yield from _daily_actions(conn, TotalBattles, date, chunk_size)
    yield from _daily_actions(conn, DiffBattles, date, chunk_size)
    yield from _player_actions(conn, date, chunk_size)


# -- the stage ----------------------------------------------------------------------------


def _item_error(index: str, item: Mapping[str, Any]) -> ItemError:
    error = item.get("error")
    if not isinstance(error, dict):  # a transport failure carries a plain message
        error = {"type": "unknown", "reason": str(error)}
    return ItemError(index=index, doc_id=str(item.get("_id")), status=int(item.get("status", 0)),
                     type=str(error.get("type", "unknown")), reason=str(error.get("reason", "")))


def export_cycle(
    settings: Settings,
    cycle_id: int,
    *,
    client: Elasticsearch | None = None,
    chunk_size: int = 2000,
    max_retries: int = 3,
    initial_backoff: float = 2.0,
) -> ExportReport:
    """Write the cycle's ``total_battles``, ``diff_battles`` and changed ``players``.

    Arguments:
        client: used as given (and left open); else one is built from
            ``settings.elasticsearch_url`` and closed. With neither, nothing is exported
            and the report's ``skipped`` says why.
        chunk_size: documents per bulk request, and rows per fetch from the cursor.
        max_retries, initial_backoff: items refused with 429 are resent this often,
            waiting ``initial_backoff * 2**n`` seconds (this blocks the worker).

    Raises:
        CycleNotFound: no such cycle.
        ExportError: Elasticsearch could not be reached or refused a whole request.
    """
    if client is None and settings.elasticsearch_url is None:
        return ExportReport(cycle_id=cycle_id, skipped="no elasticsearch_url")
    where = mask_url(settings.elasticsearch_url or "the given client")
    documents: dict[str, int] = {}
    failed: dict[str, int] = {}
    errors: list[ItemError] = []
    # One read-only REPEATABLE READ transaction: the three indices see one snapshot even
    # if a later cycle starts writing meanwhile.
    with engine_for(settings).connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ",
                                      postgresql_readonly=True)
        date = conn.execute(select(Cycle.date).where(Cycle.id == cycle_id)).scalar_one_or_none()
        if date is None:
            raise CycleNotFound(f"cycle {cycle_id} does not exist")
        for table in ("total_battles", "diff_battles"):
            documents[daily_index(table, date)] = 0
        documents[PLAYERS_INDEX] = 0
        own = client is None
        es = client if client is not None else connect(settings)
        try:
            setup = install(es, settings)
            for ok, result in helpers.streaming_bulk(
                es, _actions(conn, date, chunk_size), chunk_size=chunk_size,
                raise_on_error=False, max_retries=max_retries,
                initial_backoff=initial_backoff, max_backoff=60.0,
            ):
                item = next(iter(result.values()))
                index = str(item.get("_index", "?"))
                if ok:
                    documents[index] = documents.get(index, 0) + 1
                    continue
                failed[index] = failed.get(index, 0) + 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(_item_error(index, item))
            alias_day(es, date)
        except (ApiError, TransportError) as exc:
            raise ExportError(f"cycle {cycle_id}: export to {where} failed: {exc}") from exc
        finally:
            if own:
                es.close()
    report = ExportReport(cycle_id=cycle_id, date=date, documents=documents, failed=failed,
                          errors=tuple(errors), templates_installed=setup.templates,
                          policy_installed=setup.policy)
    log.info("export of cycle %s (%s): %s documents, %s rejected", cycle_id, date,
             sum(documents.values()), sum(failed.values()))
    return report


def cycle_id_of(settings: Settings, date: dt.date) -> int:
    """The id of the cycle that recorded ``date``; :class:`CycleNotFound` if none did."""
    with engine_for(settings).connect() as conn:
        found = conn.execute(select(Cycle.id).where(Cycle.date == date)).scalar_one_or_none()
    if found is None:
        raise CycleNotFound(f"no cycle recorded {date.isoformat()}")
    return int(found)
