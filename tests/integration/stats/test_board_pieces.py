"""The boards stage as recorded pieces on a real server worker (RabbitMQ, PostgreSQL).

- the pieces of one night run in parallel on a worker with two processes and give
  exactly the boards of the one-task build; the night moves on once, and a piece (or
  the stage) delivered again changes nothing;
- a piece whose message was lost is re-sent by the reaper, a piece being built is not;
- a piece failing for good fails the night in ``materialising`` with the piece named
  (shown by ``cycle status``), and ``cycle retry`` builds only the unfinished pieces.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from battletracker.db import engine_for, session_scope
from battletracker.pipeline.boards import enter_stage
from battletracker.pipeline.reaper import reap
from battletracker.settings import Settings
from battletracker.stats.interfaces import WINDOWS
from battletracker.stats.materialise import leaf_name, materialise
from battletracker.stats.registry import default_registry
from tests.common.services import Worker, rabbit_vhost, run_cli

from .data import build, insert

app_module = importlib.import_module("battletracker.app")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

BOARDS = list(default_registry().scorers())
PIECES = 3 + len(BOARDS) * len(WINDOWS) + 1  # sums of day/week/month, boards, activity


def _q(settings: Settings, sql: str, **params: Any) -> list[Any]:
    with engine_for(settings).begin() as conn:
        return list(conn.execute(text(sql), params).all())


def _x(settings: Settings, sql: str, **params: Any) -> None:
    with engine_for(settings).begin() as conn:
        conn.execute(text(sql), params)


def _leaves(settings: Settings) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    with engine_for(settings).connect() as conn:
        return {
            (b, w): [tuple(r) for r in conn.execute(text(
                f"SELECT rank, platform_rank, account_id, score, battles "
                f"FROM {leaf_name(b, w)} ORDER BY rank")).all()]
            for b in BOARDS for w in WINDOWS
        }  # fmt: skip


def _night(settings: Settings, seed: int, players: int, cycle_id: int) -> Any:
    data = build(seed=seed, n_players=players)
    with engine_for(settings).begin() as conn:
        insert(conn, data)
        conn.execute(text(
            "INSERT INTO cycles (id, date, status, chunks_total, chunks_stored, ids_total, "
            "accounts, rejected_results, notes) VALUES (:id, :d, 'materialising', 0, 0, 0, "
            "0, 0, '{}')"), {"id": cycle_id, "d": data.as_of})  # fmt: skip
    return data


class Server:
    def __init__(self, settings: Settings, broker: str, worker: Worker, env: dict[str, str]):
        self.settings, self.broker, self.worker, self.env = settings, broker, worker, env

    def send(self, task: str, *args: Any) -> None:
        app_module.app.send_task(task, args=args)

    def status(self, cycle_id: int) -> str:
        return str(_q(self.settings, "SELECT status FROM cycles WHERE id = :c", c=cycle_id)[0][0])

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.3)
        raise AssertionError(f"{what}: {self.worker.log.read_text()[-4000:]}")

    def log(self) -> str:
        return self.worker.log.read_text()


@contextmanager
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    with rabbit_vhost() as broker:
        s = settings.replace(broker_url=broker, stale_after_seconds=10)
        env = {"BATTLETRACKER_BROKER_URL": broker,
               "BATTLETRACKER_DATABASE_URL": s.database_url,
               "BATTLETRACKER_STALE_AFTER_SECONDS": "10"}  # fmt: skip
        worker = Worker("server", "control", env, tmp_path / "server.log", concurrency=2)
        try:
            worker.wait_ready()
            app_module.configure(s)
            yield Server(s, broker, worker, env)
        finally:
            worker.stop()


def _succeeded(log: str) -> int:
    return sum(1 for line in log.splitlines()
               if "battletracker.build_board_piece[" in line and "succeeded" in line)  # fmt: skip


def test_pieces_run_in_parallel_equal_the_one_task_build_and_move_the_night_once(
    db_settings: Settings, tmp_path: Path
) -> None:
    data = _night(db_settings, seed=21, players=3000, cycle_id=7)
    materialise(engine_for(db_settings), data.as_of)
    whole = _leaves(db_settings)
    activity = _q(db_settings, "SELECT * FROM daily_activity ORDER BY platform")
    _x(db_settings, "DELETE FROM daily_activity")
    for b, w in whole:  # the pieces must rebuild every row
        _x(db_settings, f"DELETE FROM {leaf_name(b, w)}")
    with server(db_settings, tmp_path) as srv:
        srv.send("battletracker.materialise_cycle", 7)
        srv.send("battletracker.materialise_cycle", 7)  # the stage delivered twice
        srv.wait("night done", lambda: srv.status(7) in ("done", "failed"))
        assert srv.status(7) == "done", _q(db_settings, "SELECT error FROM cycles")
        pieces = _q(db_settings, "SELECT id, state, attempts, started_at, finished_at "
                                 "FROM board_builds WHERE cycle_id = 7")  # fmt: skip
        assert len(pieces) == PIECES and {p.state for p in pieces} == {"done"}
        overlapping = [(a.id, b.id) for a in pieces for b in pieces if a.id < b.id
                       and a.started_at < b.finished_at and b.started_at < a.finished_at]
        assert overlapping, "two pieces built at the same time"
        assert srv.log().count("board pieces done; exporting") == 1
        assert _leaves(db_settings) == whole
        assert _q(db_settings, "SELECT * FROM daily_activity ORDER BY platform") != []
        [(notes,)] = _q(db_settings, "SELECT notes FROM cycles WHERE id = 7")
        assert notes["boards"]["pieces"] == PIECES
        # every piece delivered again, and the stage: nothing is built or moved again
        builds = _q(db_settings, "SELECT board, time_window, built_at FROM leaderboard_builds")
        before = _succeeded(srv.log())
        for p in pieces:
            srv.send("battletracker.build_board_piece", 7, p.id)
        srv.send("battletracker.materialise_cycle", 7)
        srv.wait("re-deliveries run", lambda: _succeeded(srv.log()) >= before + len(pieces))
        assert _q(db_settings, "SELECT board, time_window, built_at FROM leaderboard_builds"
                  ) == builds  # fmt: skip
        assert _q(db_settings, "SELECT id, state, attempts, started_at, finished_at "
                               "FROM board_builds WHERE cycle_id = 7") == pieces  # fmt: skip
        assert srv.log().count("board pieces done; exporting") == 1
        assert srv.status(7) == "done"
    assert len(activity) == len(_q(db_settings, "SELECT * FROM daily_activity"))


def test_a_lost_piece_is_resent_by_the_reaper_and_one_being_built_is_not(
    db_settings: Settings, tmp_path: Path
) -> None:
    _night(db_settings, seed=22, players=300, cycle_id=8)
    with session_scope(db_settings) as session:  # recorded and "sent": every message lost
        entry = enter_stage(session, 8)
    assert entry is not None and entry.send and not entry.finished
    _x(db_settings, "UPDATE board_builds SET created_at = now() - interval '1 hour', "
                    "sent_at = now() - interval '1 hour'")  # fmt: skip
    # one piece was claimed by a worker that died: running, nobody holds it
    _x(db_settings, "UPDATE board_builds SET state = 'running', attempts = 1, "
                    "started_at = now() - interval '1 hour' WHERE board = 'avg_damage' "
                    "AND time_window = 'all'")  # fmt: skip
    [(held,)] = _q(db_settings, "SELECT id FROM board_builds WHERE board = 'battles' "
                                "AND time_window = 'all'")  # fmt: skip
    with engine_for(db_settings).connect() as building:
        # a piece being built holds its row: the reaper leaves it alone
        building.execute(text("SELECT 1 FROM board_builds WHERE id = :p FOR UPDATE"),
                         {"p": held})  # fmt: skip
        with session_scope(db_settings) as session:
            report = reap(session, db_settings.replace(stale_after_seconds=10),
                          lambda specs: None, fetch_queue_ready=None)  # fmt: skip
        ids = {p for _, p in report.pieces}
        assert held not in ids and len(ids) == len(entry.send) - 1
        assert report.stages == []  # the stage is reaped piece by piece, not re-sent whole
        _x(db_settings, "UPDATE board_builds SET sent_at = now() - interval '1 hour' "
                        "WHERE id <> :p", p=held)  # fmt: skip
        with server(db_settings, tmp_path) as srv:
            srv.send("battletracker.reap_stale")
            srv.wait("all but the held piece done", lambda: _q(
                db_settings, "SELECT count(*) FROM board_builds WHERE state = 'done'"
            )[0][0] == PIECES - 1)  # fmt: skip
            time.sleep(1)
            assert srv.status(8) == "materialising"
            building.rollback()  # its worker died too
            _x(db_settings, "UPDATE board_builds SET sent_at = now() - interval '1 hour' "
                            "WHERE id = :p", p=held)  # fmt: skip
            srv.send("battletracker.reap_stale")
            srv.wait("night done", lambda: srv.status(8) == "done")
    assert _q(db_settings, "SELECT attempts FROM board_builds WHERE board = 'avg_damage' "
                           "AND time_window = 'all'") == [(2,)]  # fmt: skip


_FAIL = """
CREATE FUNCTION bt_test_fail() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN
  IF NEW.board = 'win_rate' AND NEW.time_window = 'week' THEN
    RAISE EXCEPTION 'forced failure of win_rate/week';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER bt_test_fail BEFORE INSERT ON leaderboard_builds
FOR EACH ROW EXECUTE FUNCTION bt_test_fail();
"""


def test_a_piece_failing_for_good_fails_the_night_and_retry_builds_only_the_rest(
    db_settings: Settings, tmp_path: Path
) -> None:
    data = _night(db_settings, seed=23, players=300, cycle_id=9)
    _x(db_settings, _FAIL)
    with server(db_settings, tmp_path) as srv:
        srv.send("battletracker.materialise_cycle", 9)
        srv.wait("night failed", lambda: srv.status(9) == "failed")
        srv.wait("the other pieces done", lambda: _q(
            db_settings, "SELECT count(*) FROM board_builds WHERE state IN "
            "('pending', 'running')")[0][0] == 0)  # fmt: skip
        [(stage, error)] = _q(db_settings, "SELECT failed_stage, error FROM cycles")
        assert stage == "materialising"
        assert "board piece win_rate/week" in error and "forced failure" in error
        env = {**srv.env}
        shown = run_cli("cycle", "status", "--date", data.as_of.isoformat(), env=env)
        assert "FAILED   in materialising: board piece win_rate/week" in shown
        assert f"boards   {PIECES - 1}/{PIECES}" in shown
        done = _q(db_settings, "SELECT id, attempts, finished_at FROM board_builds "
                               "WHERE state = 'done' ORDER BY id")  # fmt: skip
        _x(db_settings, "DROP TRIGGER bt_test_fail ON leaderboard_builds")
        out = run_cli("cycle", "retry", "--date", data.as_of.isoformat(), env=env)
        assert "stage materialising sent again" in out
        srv.wait("night done", lambda: srv.status(9) == "done")
    ids = [d.id for d in done]
    assert _q(db_settings, "SELECT id, attempts, finished_at FROM board_builds "
                           "WHERE id = ANY(:i) ORDER BY id", i=ids) == done  # fmt: skip
    assert _q(db_settings, "SELECT state, attempts, error FROM board_builds WHERE "
                           "board = 'win_rate' AND time_window = 'week'") == [("done", 1, None)]
    assert _q(db_settings, "SELECT as_of FROM leaderboard_builds WHERE board = 'win_rate' "
                           "AND time_window = 'week'") == [(data.as_of,)]  # fmt: skip
