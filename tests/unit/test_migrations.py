"""The migration creates the cycle's tables as the models declare them."""

from __future__ import annotations

from sqlalchemy import inspect

from battletracker.db import engine_for
from battletracker.models import COUNTERS, Base


def test_migration_creates_every_mapped_table(db_settings):
    insp = inspect(engine_for(db_settings))
    tables = set(insp.get_table_names())
    assert set(Base.metadata.tables) <= tables
    player_cols = {c["name"] for c in insp.get_columns("players")}
    assert set(COUNTERS) <= player_cols
    assert {"account_id", "platform", "nickname", "last_seen"} <= player_cols
