"""Shared fixtures: isolation from the shell's BATTLETRACKER_* variables, fresh databases.

PostgreSQL is required: when it cannot be reached the tests fail (never skip), so CI
cannot turn green without the real services.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from battletracker.settings import Settings
from battletracker.testing.databases import ADMIN_URL_ENV, temporary_database
from tests.common.exclusive import hold

_KEEP = {ADMIN_URL_ENV, "BATTLETRACKER_TEST_BROKER_URL"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's BATTLETRACKER_* settings or config file."""
    for var in list(os.environ):
        if var.startswith("BATTLETRACKER_") and var not in _KEEP:
            monkeypatch.delenv(var)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """Under pytest-xdist, a test marked ``exclusive`` waits for the others and runs alone.

    The lock covers the whole protocol (the module fixtures an item sets up or tears
    down included: they create vhosts and start workers on the shared broker). The
    workers of one run share ``PYTEST_XDIST_TESTRUNUID``; a serial run needs no lock.
    """
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return (yield)
    exclusive = item.get_closest_marker("exclusive") is not None
    with hold(Path(tempfile.gettempdir()) / f"bt-test-locks-{run}", exclusive=exclusive):
        return (yield)


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
