"""Boards rebuilt per board and window: same boards as the one-task build.

The pieces (``build_window_sums`` + ``materialise_board``) give exactly the boards of
the one-task ``materialise``, and a board refuses sums made for another night. The
pieces as tasks on a real worker: ``test_board_pieces.py``.
"""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from sqlalchemy import text

from battletracker.db import engine_for
from battletracker.settings import Settings
from battletracker.stats.interfaces import WINDOWS
from battletracker.stats.materialise import (
    StaleSums,
    build_window_sums,
    leaf_name,
    materialise,
    materialise_board,
)
from battletracker.stats.registry import default_registry

from .data import build, insert

app_module = importlib.import_module("battletracker.app")
pytestmark = pytest.mark.integration


def _leaves(settings: Settings) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    boards = list(default_registry().scorers())
    with engine_for(settings).connect() as conn:
        return {
            (b, w): [tuple(r) for r in conn.execute(text(
                f"SELECT rank, platform_rank, account_id, score, battles, ctid "
                f"FROM {leaf_name(b, w)} ORDER BY rank")).all()]
            for b in boards for w in WINDOWS
        }  # fmt: skip


def test_per_board_builds_equal_the_one_task_build(db_settings: Settings) -> None:
    data = build(seed=12, n_players=300)
    engine = engine_for(db_settings)
    with engine.begin() as conn:
        insert(conn, data)
    materialise(engine, data.as_of, activity=False)
    whole = _leaves(db_settings)
    with engine.begin() as conn:  # wipe the leaves' rows: the pieces must rebuild them all
        for b, w in whole:
            conn.execute(text(f"DELETE FROM {leaf_name(b, w)}"))
    with engine.connect() as conn:
        for window in WINDOWS:
            build_window_sums(conn, window, data.as_of)
            for scorer in default_registry().scorers().values():
                result = materialise_board(conn, data.as_of, window, scorer)
                assert not result.skipped and result.as_of == data.as_of
    assert _leaves(db_settings) == whole
    assert any(rows for rows in whole.values())


def test_a_board_refuses_sums_of_another_night(db_settings: Settings) -> None:
    data = build(seed=13, n_players=100)
    engine = engine_for(db_settings)
    with engine.begin() as conn:
        insert(conn, data)
    scorer = default_registry().scorer("battles")
    with engine.connect() as conn:
        build_window_sums(conn, "week", data.as_of - dt.timedelta(days=1))
        with pytest.raises(StaleSums):
            materialise_board(conn, data.as_of, "week", scorer)
        build_window_sums(conn, "week", data.as_of)
        assert materialise_board(conn, data.as_of, "week", scorer).total > 0
