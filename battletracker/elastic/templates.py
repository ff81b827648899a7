"""Index templates, the lifecycle policy and aliases that keep the cluster healthy for years.

Two daily indices a day (``total_battles-YYYY.MM.DD``, ``diff_battles-YYYY.MM.DD``), one
shard each, no replica on a single node (a replica there has nowhere to go and turns the
cluster yellow), deleted by the lifecycle policy after ``elasticsearch_retention_days``,
so the node's shard count stays near ``2 x retention`` (below Elasticsearch's default
limit of 1,000 per node). Every daily index joins an alias of its table
(``total_battles``, ``diff_battles``) on creation, so queries and Kibana need no pattern.

Each template and the policy carry a fingerprint of their body in ``_meta``:
:func:`install` re-PUTs only what changed, which makes it cheap to call before every export.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from ..models import COUNTERS
from ..settings import Settings

__all__ = [
    "DAILY_ALIASES",
    "INDEX_TEMPLATES",
    "LIFECYCLE_POLICY",
    "PLAYERS_INDEX",
    "SetupReport",
    "alias_day",
    "daily_index",
    "index_templates",
    "install",
    "lifecycle_policy",
]

Doc = dict[str, Any]

PLAYERS_INDEX = "players"
#: The daily tables exported, each with its alias over all its days.
DAILY_ALIASES = ("total_battles", "diff_battles")
#: Name of the lifecycle policy of the daily indices.
LIFECYCLE_POLICY = "battletracker-daily"

_COUNTER_FIELDS: Doc = {name: {"type": "long"} for name in COUNTERS}
_DAILY_FIELDS: Doc = {
    "account_id": {"type": "long"},
    "date": {"type": "date", "format": "strict_date"},
    "platform": {"type": "keyword"},
    **_COUNTER_FIELDS,
}
_PLAYER_FIELDS: Doc = {
    "account_id": {"type": "long"},
    "platform": {"type": "keyword"},
    "nickname": {"type": "keyword"},
    "created_at": {"type": "date", "format": "strict_date_optional_time"},
    "last_battle_time": {"type": "date", "format": "strict_date_optional_time"},
    "last_seen": {"type": "date", "format": "strict_date"},
    **_COUNTER_FIELDS,
}


def daily_index(table: str, date: dt.date) -> str:
    """``total_battles-2026.01.15``: one index per table per day."""
    return f"{table}-{date:%Y.%m.%d}"


def _fingerprint(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _template(pattern: str, properties: Doc, settings: Doc, aliases: Doc) -> Doc:
    # ``dynamic: strict``: a field added to the documents but not here fails loudly at
    # export time instead of being guessed (a counter mapped as float, a date as text).
    body: Doc = {
        "index_patterns": [pattern],
        "priority": 200,
        "template": {
            "settings": settings,
            "mappings": {"dynamic": "strict", "properties": properties},
            **({"aliases": aliases} if aliases else {}),
        },
    }
    body["_meta"] = {"managed_by": "battletracker", "fingerprint": _fingerprint(body)}
    return body


def index_templates(settings: Settings) -> dict[str, Doc]:
    """Composable index templates, applied when Elasticsearch auto-creates an index."""
    base = {"number_of_shards": 1, "number_of_replicas": settings.elasticsearch_replicas}
    daily = {**base, "index.lifecycle.name": LIFECYCLE_POLICY}
    out = {f"battletracker-{table}": _template(f"{table}-*", _DAILY_FIELDS, daily, {table: {}})
           for table in DAILY_ALIASES}
    out["battletracker-players"] = _template(PLAYERS_INDEX, _PLAYER_FIELDS, base, {})
    return out


def lifecycle_policy(settings: Settings) -> Doc:
    """Delete a daily index ``elasticsearch_retention_days`` after it was created."""
    policy: Doc = {"phases": {
        "hot": {"min_age": "0ms", "actions": {"set_priority": {"priority": 100}}},
        "delete": {"min_age": f"{settings.elasticsearch_retention_days}d",
                   "actions": {"delete": {}}},
    }}
    policy["_meta"] = {"managed_by": "battletracker", "fingerprint": _fingerprint(policy)}
    return policy


#: The templates under the default settings (for readers and tests).
INDEX_TEMPLATES: Mapping[str, Doc] = index_templates(Settings())


@dataclass(frozen=True)
class SetupReport:
    """What :func:`install` (re)wrote; empty tuples when everything was current."""

    templates: tuple[str, ...]
    policy: bool
    aliased: tuple[str, ...] = ()


def _meta_fingerprint(found: Mapping[str, Any]) -> str | None:
    meta = found.get("_meta") or {}
    return meta.get("fingerprint") if isinstance(meta, dict) else None


def install(client: Elasticsearch, settings: Settings) -> SetupReport:
    """PUT the lifecycle policy and the templates unless the same ones are there.

    The policy goes first: a template naming a policy that does not exist yet would
    create indices whose lifecycle fails.
    """
    policy = lifecycle_policy(settings)
    try:
        found = client.ilm.get_lifecycle(name=LIFECYCLE_POLICY)[LIFECYCLE_POLICY]["policy"]
    except NotFoundError:
        found = {}
    policy_put = _meta_fingerprint(found) != policy["_meta"]["fingerprint"]
    if policy_put:
        client.ilm.put_lifecycle(name=LIFECYCLE_POLICY, policy=policy)
    installed = []
    for name, body in index_templates(settings).items():
        try:
            current = client.indices.get_index_template(name=name)["index_templates"]
        except NotFoundError:
            current = []
        if any(_meta_fingerprint(t["index_template"]) == body["_meta"]["fingerprint"]
               for t in current):
            continue
        client.indices.put_index_template(
            name=name, index_patterns=body["index_patterns"], priority=body["priority"],
            meta=body["_meta"], template=body["template"],
        )
        installed.append(name)
    return SetupReport(templates=tuple(installed), policy=policy_put)


def alias_day(client: Elasticsearch, date: dt.date) -> tuple[str, ...]:
    """Put the day's indices into their aliases (new indices are by the template already;
    this covers indices made before the templates had aliases). Idempotent."""
    names = [daily_index(table, date) for table in DAILY_ALIASES]
    existing = [n for n in names if client.indices.exists(index=n)]
    if existing:
        client.indices.update_aliases(actions=[
            {"add": {"index": n, "alias": n.rsplit("-", 1)[0]}} for n in existing])
    return tuple(existing)
