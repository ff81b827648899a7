"""Fixtures of the web tests: one populated database per module, app clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database
from battletracker.web.app import create_app
from battletracker.web.auth import hash_password
from battletracker.web.secret import new_secret_key

from .dataset import Dataset, populate

OPERATOR = ("alice", "correct horse battery staple")
#: Few iterations: hashing speed is not what these tests measure.
OPERATOR_HASH = hash_password(OPERATOR[1], iterations=1_000)
#: What Prometheus sends as its bearer token in these tests.
METRICS_TOKEN = "metrics-token-for-tests"
METRICS_AUTH = {"authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture(scope="module")
def populated() -> Iterator[tuple[Settings, Dataset]]:
    base = Settings(secret_key=new_secret_key(), operators=((OPERATOR[0], OPERATOR_HASH),),
                    metrics_token=METRICS_TOKEN)
    with temporary_database(base) as settings:
        yield settings, populate(settings)


@pytest.fixture(scope="module")
def data(populated: tuple[Settings, Dataset]) -> Dataset:
    return populated[1]


@pytest.fixture(scope="module")
def web_settings(populated: tuple[Settings, Dataset]) -> Settings:
    return populated[0]


@pytest.fixture(scope="module")
def client(web_settings: Settings) -> Iterator[TestClient]:
    # raise_server_exceptions: an unexpected error fails the test instead of being a 500.
    with TestClient(create_app(web_settings), raise_server_exceptions=True) as c:
        yield c
