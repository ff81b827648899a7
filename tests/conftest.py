"""Shared fixtures: isolation from the shell's BATTLETRACKER_* variables, fresh databases.

PostgreSQL is required: when it cannot be reached the tests fail (never skip), so CI
cannot turn green without the real services.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from battletracker.settings import Settings
from battletracker.testing.databases import ADMIN_URL_ENV, temporary_database

_KEEP = {ADMIN_URL_ENV, "BATTLETRACKER_TEST_BROKER_URL"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's BATTLETRACKER_* settings or config file."""
    for var in list(os.environ):
        if var.startswith("BATTLETRACKER_") and var not in _KEEP:
            monkeypatch.delenv(var)


@pytest.fixture
def settings() -> Settings:
    """Plain settings with no database (unit tests)."""
    return Settings()


@pytest.fixture
def db_settings() -> Iterator[Settings]:
    """Settings pointing at a fresh, migrated database, dropped after the test."""
    with temporary_database(Settings()) as s:
        yield s


@pytest.fixture(scope="module")
def module_db_settings() -> Iterator[Settings]:
    """Like ``db_settings`` but shared by the tests of one module (for costly data)."""
    with temporary_database(Settings()) as s:
        yield s
