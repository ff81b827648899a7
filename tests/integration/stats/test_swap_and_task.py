"""Readers never see a half-built board; the Celery task materialises a cycle's date."""

from __future__ import annotations

import importlib
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from battletracker.db import engine_for
from battletracker.stats import queries
from battletracker.stats.materialise import materialise
from battletracker.stats.registry import default_registry

from .data import brute_force, build, insert

# ``battletracker.app`` the attribute is the Celery instance; the module is this:
app_module = importlib.import_module("battletracker.app")

pytestmark = pytest.mark.integration


def test_readers_see_the_old_board_or_the_new_one_never_a_mix(db_settings):
    data = build(seed=8, n_players=600)
    engine = engine_for(db_settings)
    with engine.begin() as conn:
        insert(conn, data)
    materialise(engine, data.as_of, boards=["battles"], windows=["all"], activity=False)
    scorer = default_registry().scorer("battles")
    old = brute_force(data.players, scorer, "all")
    # The next build ranks differently: everybody's battles change.
    with engine.begin() as conn:
        conn.execute(text("UPDATE players SET battles = (account_id * 7919) % 10007 + 1"))
    new_players = {a: (p, {**c, "battles": (a * 7919) % 10007 + 1})
                   for a, (p, c) in data.players.items()}
    new = brute_force(new_players, scorer, "all")
    assert old != new

    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            with Session(engine) as session:
                while not stop.is_set():
                    page = queries.top(session, "battles", "all", "all", limit=500)
                    session.commit()
                    got = [(e.rank, e.account_id, e.score, e.battles) for e in page.entries]
                    if got == old[:500] and page.total == len(old):
                        seen.append("old")
                    elif got == new[:500] and page.total == len(new):
                        seen.append("new")
                    else:
                        seen.append("mixed")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(4):
            materialise(engine, data.as_of, boards=["battles"], windows=["all"],
                        activity=False)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    assert "mixed" not in seen
    assert seen.count("new") > 0
    print(f"reads during the swaps: {seen.count('old')} old, {seen.count('new')} new")


def test_task_materialises_the_date_of_the_cycle(db_settings, monkeypatch):
    from battletracker.stats.tasks import materialise_boards

    monkeypatch.setattr(app_module, "_settings", db_settings)
    data = build(seed=9, n_players=120)
    engine = engine_for(db_settings)
    with engine.begin() as conn:
        insert(conn, data)
        conn.execute(text(
            "INSERT INTO cycles (id, date, status, chunks_total, chunks_stored, ids_total, "
            "accounts, rejected_results, notes) VALUES (7, :d, 'exporting', 0, 0, 0, 0, 0, "
            "'{}')"), {"d": data.as_of})

    assert materialise_boards.name in app_module.app.tasks
    route = app_module.app.amqp.router.route({}, materialise_boards.name)
    assert route["queue"].name == "control"

    first = materialise_boards(7)
    assert first["boards"] == 20 and first["date"] == data.as_of.isoformat()
    with Session(engine) as session:
        page = queries.top(session, "win_rate", "month", "ps", limit=500)
        before = queries.top(session, "battles", "day", "all", limit=500)
    assert page.as_of == data.as_of
    assert [e.account_id for e in page.entries] == [
        a for _, a, _, _ in brute_force(data.window_counters("month"),
                                        default_registry().scorer("win_rate"), "ps")]
    again = materialise_boards(7)  # a redelivery: same boards
    assert again["boards"] == 20
    with Session(engine) as session:
        assert queries.top(session, "battles", "day", "all", limit=500) == before
        assert queries.activity(session, days=1)[0].date == data.as_of
    assert materialise_boards(999) == {"cycle_id": 999, "boards": 0}
