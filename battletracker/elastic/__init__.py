"""Elasticsearch and Kibana for the operator: client of the right major, templates, objects."""

from __future__ import annotations

from .client import ElasticCheck, check_server, connect
from .kibana import KIBANA_OBJECTS, KibanaError, import_objects, load_objects
from .templates import (
    DAILY_ALIASES,
    INDEX_TEMPLATES,
    LIFECYCLE_POLICY,
    PLAYERS_INDEX,
    SetupReport,
    daily_index,
    index_templates,
    install,
    lifecycle_policy,
)

__all__ = [
    "DAILY_ALIASES",
    "INDEX_TEMPLATES",
    "KIBANA_OBJECTS",
    "LIFECYCLE_POLICY",
    "PLAYERS_INDEX",
    "ElasticCheck",
    "KibanaError",
    "SetupReport",
    "check_server",
    "connect",
    "daily_index",
    "import_objects",
    "index_templates",
    "install",
    "lifecycle_policy",
    "load_objects",
]
