"""Create and drop throwaway PostgreSQL databases (tests, benchmarks)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from ..db import dispose_engines, make_engine
from ..migrate import upgrade
from ..settings import Settings

__all__ = ["ADMIN_URL_ENV", "admin_url", "temporary_database"]

#: Where tests find a PostgreSQL server they may create databases on.
ADMIN_URL_ENV = "BATTLETRACKER_TEST_ADMIN_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)


@contextmanager
def temporary_database(
    base: Settings, *, prefix: str = "bt_test", migrate: bool = True, admin: str | None = None
) -> Iterator[Settings]:
    """A fresh, migrated database; yields settings pointing at it, drops it afterwards."""
    admin = admin or admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    eng = make_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    # the settings keep the spelling the caller used (plain postgresql:// by default)
    url = make_url(admin).set(database=name)
    settings = base.replace(database_url=url.render_as_string(hide_password=False))
    try:
        if migrate:
            upgrade(settings)
        yield settings
    finally:
        dispose_engines()
        with eng.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()
