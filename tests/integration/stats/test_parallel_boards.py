"""Boards rebuilt per board and window as separate tasks: same boards, run in parallel.

The pieces (``build_window_sums`` + ``materialise_board``) give exactly the boards of
the one-task ``materialise``; a board refuses sums made for another night; and
``battletracker.rebuild_boards`` sent to a real server worker with two processes
builds every board of every window and the day's activity.
"""

from __future__ import annotations

import datetime as dt
import importlib
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from battletracker.db import engine_for
from battletracker.settings import Settings
from battletracker.stats import queries
from battletracker.stats.interfaces import WINDOWS
from battletracker.stats.materialise import (
    StaleSums,
    build_window_sums,
    leaf_name,
    materialise,
    materialise_board,
)
from battletracker.stats.registry import default_registry
from tests.common.services import Worker, rabbit_vhost

from .data import brute_force, build, insert

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


@pytest.mark.timeout(300)
def test_rebuild_boards_task_fans_out_on_a_real_worker(db_settings: Settings,
                                                       tmp_path: Path) -> None:
    data = build(seed=14, n_players=200)
    engine = engine_for(db_settings)
    with engine.begin() as conn:
        insert(conn, data)
        conn.execute(text(
            "INSERT INTO cycles (id, date, status, chunks_total, chunks_stored, ids_total, "
            "accounts, rejected_results, notes) VALUES (7, :d, 'exporting', 0, 0, 0, 0, 0, "
            "'{}')"), {"d": data.as_of})  # fmt: skip
    with rabbit_vhost() as broker:
        settings = db_settings.replace(broker_url=broker)
        env = {"BATTLETRACKER_BROKER_URL": broker,
               "BATTLETRACKER_DATABASE_URL": settings.database_url}
        worker = Worker("server", "control", env, tmp_path / "server.log", concurrency=2)
        try:
            worker.wait_ready()
            app_module.configure(settings)
            from battletracker.stats.tasks import rebuild_boards

            rebuild_boards.delay(7)
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    built = conn.execute(text(
                        "SELECT count(*) FROM leaderboard_builds WHERE as_of = :d"),
                        {"d": data.as_of}).scalar_one()
                    days = conn.execute(text(
                        "SELECT count(*) FROM daily_activity WHERE date = :d"),
                        {"d": data.as_of}).scalar_one()
                if built == len(default_registry().scorers()) * len(WINDOWS) and days:
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(worker.log.read_text()[-3000:])
        finally:
            worker.stop()
    scorer = default_registry().scorer("win_rate")
    with Session(engine) as session:
        page = queries.top(session, "win_rate", "month", "ps", limit=500)
    assert page.as_of == data.as_of
    assert [e.account_id for e in page.entries] == [
        a for _, a, _, _ in brute_force(data.window_counters("month"), scorer, "ps")]
    log = (tmp_path / "server.log").read_text()
    assert "battletracker.build_board" in log and "battletracker.build_window" in log
