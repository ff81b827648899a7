"""The supported-versions table, the compose file scan, and the operator stack's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from battletracker.settings import Settings, SettingsError, load_settings
from battletracker.supported import (
    ELASTICSEARCH_MAJOR,
    SERVICES,
    compose_image_version,
    elasticsearch_major_of_compose,
)


def test_compose_versions_are_read_from_the_file(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  es:\n    image: docker.elastic.co/elasticsearch/"
                       "elasticsearch:9.1.2\n  db:\n    image: \"postgres:17.0\"\n")
    assert compose_image_version("elasticsearch/elasticsearch", compose) == "9.1.2"
    assert compose_image_version("postgres", compose) == "17.0"
    assert elasticsearch_major_of_compose(compose) == 9
    assert compose_image_version("rabbitmq", compose) is None
    # without a compose file (an installed package) the written-down major applies
    assert elasticsearch_major_of_compose(tmp_path / "absent.yml") == ELASTICSEARCH_MAJOR


def test_the_table_accepts_its_majors_only() -> None:
    es = SERVICES["elasticsearch"]
    assert es.accepts(ELASTICSEARCH_MAJOR)
    assert not es.accepts(ELASTICSEARCH_MAJOR + 1)
    assert str(SERVICES["postgresql"]) == "PostgreSQL 14-17"


def test_operator_stack_settings_parse_and_validate() -> None:
    s = load_settings(environ={"BATTLETRACKER_ELASTICSEARCH_REPLICAS": "1",
                               "BATTLETRACKER_ELASTICSEARCH_RETENTION_DAYS": "90",
                               "BATTLETRACKER_KIBANA_URL": "http://kibana:5601",
                               "BATTLETRACKER_DB_WEB_PASSWORD": "pw"})
    assert (s.elasticsearch_replicas, s.elasticsearch_retention_days) == (1, 90)
    assert s.kibana_url == "http://kibana:5601"
    assert s.masked()["db_web_password"] == "***"
    assert Settings().kibana_url is None
    with pytest.raises(SettingsError, match="elasticsearch_retention_days"):
        Settings(elasticsearch_retention_days=600)  # 1,200 shards: past a node's limit
    with pytest.raises(SettingsError, match="kibana_url"):
        Settings(kibana_url="kibana:5601")
