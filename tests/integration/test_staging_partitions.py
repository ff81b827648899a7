"""A night's staging partition has its cycle as the default of ``cycle_id`` (0013).

The store's COPY leaves the column out (``pipeline/staging.py``): a partition without
the default would refuse every row (NULL is in no partition's bound).
"""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import text

from battletracker.db import engine_for, session_scope
from battletracker.migrate import alembic_config, upgrade
from battletracker.pipeline.coordinator import create_cycle
from battletracker.pipeline.store import store_result
from battletracker.settings import Settings
from tests.integration.test_store import chunks_of, result_for, staged

pytestmark = pytest.mark.integration


def default_of(db: Settings, cycle_id: int) -> str | None:
    with engine_for(db).connect() as conn:
        return conn.execute(
            text("SELECT column_default FROM information_schema.columns "
                 "WHERE table_name = :t AND column_name = 'cycle_id'"),
            {"t": f"staged_accounts_c{cycle_id}"},
        ).scalar_one()  # fmt: skip


def test_a_nights_partition_defaults_to_its_cycle(db_settings: Settings) -> None:
    with session_scope(db_settings) as s:
        first = create_cycle(s, db_settings, dt.date(2034, 1, 1)).cycle_id
        second = create_cycle(s, db_settings, dt.date(2034, 1, 2)).cycle_id
    assert (default_of(db_settings, first), default_of(db_settings, second)) == (
        str(first), str(second))  # fmt: skip


def test_the_upgrade_gives_the_partitions_of_nights_in_flight_their_cycle(
    db_settings: Settings,
) -> None:
    """A night created before 0013 is stored after it: its partition gets the default."""
    command.downgrade(alembic_config(db_settings), "0012")
    with session_scope(db_settings) as s:
        cycle_id = create_cycle(s, db_settings, dt.date(2034, 2, 1)).cycle_id
    assert default_of(db_settings, cycle_id) is None
    upgrade(db_settings)
    assert default_of(db_settings, cycle_id) == str(cycle_id)
    msg = result_for(chunks_of(db_settings, cycle_id)[0])
    with session_scope(db_settings) as s:
        assert store_result(s, msg).accounts == len(msg["rows"])
    assert [r[0] for r in staged(db_settings, cycle_id)] == [r[0] for r in msg["rows"]]
