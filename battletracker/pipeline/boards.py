"""The boards stage of a cycle (``materialising``) as recorded pieces, each its own task.

One night's boards at 17 M accounts do not fit one task under RabbitMQ's consumer
timeout, so the stage is split into pieces (rows of ``board_builds``)::

    sums of day ─► every board over day        every board over all
    sums of week ─► every board over week      the day's activity
    sums of month ─► every board over month

:func:`enter_stage` (the stage task) records the pieces once and sends every unfinished
piece that is ready (a board of a summed window only once its sums are done); the
server worker's processes build several at once. :func:`run_piece` builds one: it
claims the piece (``running``, attempts + 1, committed), then in one transaction holds
the piece's row locked, builds and swaps it in and marks it ``done``; a sums piece also
sends its window's boards. The piece that leaves none unfinished moves the cycle to
``exporting`` under the cycle's row lock, so exactly once. Each piece is idempotent: a
re-delivery finds its piece done, or locked by the delivery building it, and does
nothing. No chord: the reaper re-sends a piece nobody holds (``SKIP LOCKED``) whose
message was lost, see :func:`lost_pieces`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from ..db import session_scope
from ..models import BoardBuild, CycleStatus
from ..settings import Settings
from .stages import fail_stage

__all__ = [
    "PieceOutcome",
    "StageEntry",
    "enter_stage",
    "fail_piece",
    "lost_pieces",
    "materialise_cycle",
    "piece_name",
    "run_piece",
]

log = logging.getLogger(__name__)

SUMS, ANY, ACTIVITY = BoardBuild.SUMS, BoardBuild.ANY_WINDOW, BoardBuild.ACTIVITY
#: Sends piece tasks: ``(cycle_id, piece_id)`` each.
SendPieces = Callable[[Sequence[tuple[int, int]]], None]

#: Unfinished pieces (alias ``b``) that may run now: a board of a summed window waits
#: for that window's sums.
_READY = f"""
    b.state IN ('pending', 'running')
    AND (b.board = '{SUMS}' OR b.time_window IN ('all', '{ANY}') OR EXISTS (
        SELECT 1 FROM board_builds s WHERE s.cycle_id = b.cycle_id AND s.time_window = b.time_window
        AND s.board = '{SUMS}' AND s.state = 'done'))
"""


def piece_name(window: str, board: str) -> str:
    """How a piece is named to people: ``sums of week``, ``battles/week``, ``activity``."""
    if board == SUMS:
        return f"sums of {window}"
    return board if window == ANY else f"{board}/{window}"


def _pieces() -> list[tuple[str, str]]:
    """Every piece of a night: (window, board)."""
    from ..stats.interfaces import WINDOWS
    from ..stats.materialise import window_bounds
    from ..stats.registry import default_registry

    boards = list(default_registry().scorers())
    summed = [w for w in WINDOWS if window_bounds(w, dt.date.today()) is not None]
    return ([(w, SUMS) for w in summed] + [(w, b) for w in WINDOWS for b in boards]
            + [(ANY, ACTIVITY)])  # fmt: skip


def _mark_sent(conn: Connection, cycle_id: int, where: str = "true") -> list[tuple[int, int]]:
    """Stamp ``sent_at`` on the ready pieces nobody is building; returns them to send."""
    ids = conn.execute(
        text(
            f"UPDATE board_builds SET sent_at = now() WHERE id IN ("
            f"  SELECT b.id FROM board_builds b WHERE b.cycle_id = :c AND {_READY} "
            f"  AND ({where})"
            f"  ORDER BY b.id FOR UPDATE SKIP LOCKED) RETURNING id"
        ),
        {"c": cycle_id},
    ).scalars()
    return [(cycle_id, i) for i in sorted(ids)]


def _finish_if_last(conn: Connection, cycle_id: int) -> bool:
    """Move the cycle to ``exporting`` if no piece is unfinished; True if this did.

    The cycle's row lock comes first: two last pieces finishing together serialise on
    it, and the count (a new statement, READ COMMITTED) sees the other's commit.
    """
    status = conn.execute(
        text("SELECT status FROM cycles WHERE id = :c FOR UPDATE"), {"c": cycle_id}
    ).scalar()
    if status != CycleStatus.materialising.value:
        return False
    left, total, summed, longest = conn.execute(
        text(
            "SELECT count(*) FILTER (WHERE state <> 'done'), count(*), "
            "coalesce(sum(seconds), 0), coalesce(max(seconds), 0) "
            "FROM board_builds WHERE cycle_id = :c"
        ),
        {"c": cycle_id},
    ).one()
    if left or not total:
        return False
    summary = {"pieces": total, "seconds": round(summed, 3), "longest": round(longest, 3)}
    conn.execute(
        text(
            "UPDATE cycles SET status = 'exporting', status_changed_at = now(), "
            "notes = coalesce(notes, '{}'::jsonb) || jsonb_build_object('boards', "
            "CAST(:s AS jsonb)) WHERE id = :c"
        ),
        {"c": cycle_id, "s": _json(summary)},
    )
    log.info("cycle %s: the last of %d board pieces done; exporting", cycle_id, total)
    return True


def _json(value: object) -> str:
    import json

    return json.dumps(value)


@dataclass(frozen=True)
class StageEntry:
    #: Pieces to send now.
    send: list[tuple[int, int]] = field(default_factory=list)
    #: No piece was left: the cycle moved on to ``exporting``.
    finished: bool = False


def enter_stage(session: Session, cycle_id: int) -> StageEntry | None:
    """Record the cycle's pieces (once) and pick the ready unfinished ones to send.

    None if the cycle is not in ``materialising`` (a duplicate message). Pieces being
    built are left out (``SKIP LOCKED``): their task is running.
    """
    conn = session.connection()
    status = conn.execute(
        text("SELECT status FROM cycles WHERE id = :c FOR UPDATE"), {"c": cycle_id}
    ).scalar()
    if status != CycleStatus.materialising.value:
        return None
    for window, board in _pieces():
        conn.execute(
            text(
                "INSERT INTO board_builds (cycle_id, time_window, board, state) "
                "VALUES (:c, :w, :b, 'pending') ON CONFLICT DO NOTHING"
            ),
            {"c": cycle_id, "w": window, "b": board},
        )
    if _finish_if_last(conn, cycle_id):
        return StageEntry(finished=True)
    return StageEntry(send=_mark_sent(conn, cycle_id))


@dataclass(frozen=True)
class PieceOutcome:
    #: False: done already, failed, or held by another delivery building it.
    ran: bool
    #: Pieces this one made ready (a window's boards, after its sums), to send.
    send: list[tuple[int, int]] = field(default_factory=list)
    #: This was the last piece: the cycle moved on to ``exporting``.
    finished: bool = False
    seconds: float = 0.0


def run_piece(settings: Settings, piece_id: int) -> PieceOutcome:
    """Build piece ``piece_id`` if nobody else is, mark it done, and move the cycle on if
    it was the last. Database errors propagate (the task retries); see the module doc."""
    from ..stats.materialise import StaleSums

    with session_scope(settings) as session:
        claimed = session.execute(
            text(
                "UPDATE board_builds b SET state = 'running', attempts = attempts + 1, "
                "started_at = now(), error = NULL FROM cycles c "
                "WHERE b.id = (SELECT id FROM board_builds WHERE id = :p "
                "  AND state IN ('pending', 'running') FOR UPDATE SKIP LOCKED) "
                "AND c.id = b.cycle_id RETURNING b.cycle_id, b.time_window, b.board, c.date"
            ),
            {"p": piece_id},
        ).one_or_none()
    if claimed is None:
        return PieceOutcome(False)
    cycle_id, window, board, day = claimed
    try:
        with session_scope(settings) as session:
            conn = session.connection()
            held = conn.execute(
                text("SELECT 1 FROM board_builds WHERE id = :p AND state = 'running' "
                     "FOR UPDATE SKIP LOCKED"), {"p": piece_id},
            ).scalar()  # fmt: skip
            if held is None:
                return PieceOutcome(False)
            t0 = time.perf_counter()
            _build(conn, window, board, day)
            seconds = time.perf_counter() - t0
            conn.execute(
                text("UPDATE board_builds SET state = 'done', finished_at = clock_timestamp(), "
                     "seconds = :s WHERE id = :p"), {"p": piece_id, "s": seconds},
            )  # fmt: skip
            send = []
            if board == SUMS:
                boards = f"b.time_window = '{window}' AND b.board <> '{SUMS}'"
                send = _mark_sent(conn, cycle_id, boards)
            finished = _finish_if_last(conn, cycle_id)
    except StaleSums as exc:
        # the window's sums are another night's (or gone): build them again first
        log.warning("%s of cycle %s: %s; its sums are built again", piece_name(window, board),
                    cycle_id, exc)  # fmt: skip
        with session_scope(settings) as session:
            return PieceOutcome(False, send=_redo_sums(session.connection(), cycle_id, window))
    log.info("cycle %s: %s built in %.1f s", cycle_id, piece_name(window, board), seconds)
    return PieceOutcome(True, send=send, finished=finished, seconds=seconds)


def _build(conn: Connection, window: str, board: str, day: dt.date) -> None:
    from ..stats.activity import materialise_activity
    from ..stats.materialise import DEFAULT_WORK_MEM, board_in, window_sums_in
    from ..stats.registry import default_registry

    if board == SUMS:
        window_sums_in(conn, window, day)
    elif board == ACTIVITY:
        conn.execute(text("SELECT set_config('work_mem', :m, true)"), {"m": DEFAULT_WORK_MEM})
        materialise_activity(conn, day)
    else:
        board_in(conn, day, window, default_registry().scorer(board))


def _redo_sums(conn: Connection, cycle_id: int, window: str) -> list[tuple[int, int]]:
    """Put the window's sums and its unfinished boards back to wait; the sums to send."""
    conn.execute(
        text(
            "UPDATE board_builds SET state = 'pending', sent_at = NULL WHERE id IN ("
            "  SELECT id FROM board_builds WHERE cycle_id = :c AND time_window = :w "
            "  AND (board = :s OR state <> 'done') FOR UPDATE SKIP LOCKED)"
        ),
        {"c": cycle_id, "w": window, "s": SUMS},
    )
    return _mark_sent(conn, cycle_id, f"b.time_window = '{window}' AND b.board = '{SUMS}'")


def fail_piece(session: Session, cycle_id: int, piece_id: int, error: str) -> str | None:
    """Mark the piece ``failed`` and its cycle failed in ``materialising``, naming the
    piece in the error (which is returned; None if the piece was done meanwhile)."""
    row = session.execute(
        text("UPDATE board_builds SET state = 'failed', error = :e, finished_at = now() "
             "WHERE id = :p AND state <> 'done' RETURNING time_window, board"),
        {"p": piece_id, "e": error[:2000]},
    ).one_or_none()  # fmt: skip
    if row is None:
        return None
    error = f"board piece {piece_name(row[0], row[1])}: {error}"
    fail_stage(session, cycle_id, CycleStatus.materialising, error)
    return error


def lost_pieces(session: Session, stale: dt.datetime, max_attempts: int) -> list[tuple[int, int]]:
    """Ready pieces of cycles in ``materialising`` whose message was lost: sent (or
    recorded, or started) before ``stale`` and held by no task (a piece being built
    holds its row: ``SKIP LOCKED``). Those started ``max_attempts`` times fail the
    cycle; the others are stamped as sent again and returned to be re-sent."""
    rows = session.execute(
        text(
            f"SELECT b.id, b.cycle_id, b.attempts FROM board_builds b "
            f"JOIN cycles c ON c.id = b.cycle_id AND c.status = 'materialising' "
            f"WHERE {_READY} "
            f"AND greatest(b.created_at, b.sent_at, b.started_at) <= :stale "
            f"ORDER BY b.id FOR UPDATE OF b SKIP LOCKED"
        ),
        {"stale": stale},
    ).all()
    resend = []
    for piece_id, cycle_id, attempts in rows:
        if attempts >= max_attempts:
            fail_piece(session, cycle_id, piece_id, f"lost {attempts} times while being built")
        else:
            resend.append((cycle_id, piece_id))
    if resend:
        session.execute(
            text("UPDATE board_builds SET sent_at = now() WHERE id = ANY(:ids)"),
            {"ids": [p for _, p in resend]},
        )
    return resend


def materialise_cycle(settings: Settings, cycle_id: int) -> bool:
    """The whole stage in this process, piece after piece (``battletracker cycle run``,
    the demo): the same pieces as the tasks, run inline. True if the cycle moved on."""
    with session_scope(settings) as session:
        entry = enter_stage(session, cycle_id)
    if entry is None:
        return False
    finished = entry.finished
    todo = list(entry.send)
    while todo:
        outcome = run_piece(settings, todo.pop(0)[1])
        todo += outcome.send
        finished = finished or outcome.finished
    return finished
