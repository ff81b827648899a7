"""The operator's day-two commands as typed: ranges, cycle list, export, export kibana."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from battletracker.cli import main
from battletracker.db import engine_for
from battletracker.pipeline.local import run_cycle
from battletracker.settings import ApiKey, IdRange, Settings
from battletracker.testing.databases import temporary_database
from battletracker.testing.elastic_standin import StandIn, start_standin
from battletracker.wargaming.simulator import BASE_URL, PS_MIN, XBOX_MIN, Population, Simulator

pytestmark = pytest.mark.integration

SPAN = 400


@pytest.fixture(scope="module")
def night() -> Iterator[dict[str, Any]]:
    """One simulated night stored; yields its settings, date and environment."""
    pop = Population(seed=9, xbox_ids=300, ps_ids=300, new_per_day=10)
    sim = Simulator(pop, keys={"k": 1000.0})
    base = Settings(wg_api_url=BASE_URL, wg_keys=(ApiKey("k", 1000.0),), chunk_size=200,
                    xbox_range=IdRange(XBOX_MIN, XBOX_MIN + SPAN),
                    ps_range=IdRange(PS_MIN, PS_MIN + SPAN))
    with temporary_database(base) as settings:
        sim.day = 1
        day = pop.date_of(1)
        run_cycle(settings, day, transport=sim.transport())
        env = {"BATTLETRACKER_DATABASE_URL": settings.database_url,
               "BATTLETRACKER_XBOX_RANGE": str(settings.xbox_range),
               "BATTLETRACKER_PS_RANGE": str(settings.ps_range)}
        yield {"settings": settings, "date": day, "env": env}


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with start_standin() as s:
        yield s


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def test_ranges_show_and_set_keep_the_history(db_settings: Settings) -> None:
    env = {"BATTLETRACKER_DATABASE_URL": db_settings.database_url}
    shown = json.loads(run(env, "ranges", "show", "--json").output)
    assert [(r["platform"], r["min_id"], r["max_id"]) for r in shown] == [
        ("xbox", 5000, 15_500_000), ("ps", 1_073_740_000, 1_085_000_000)]

    done = run(env, "ranges", "set", "xbox", "5000-16000000", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["max_id"] == 16_000_000

    again = {r["platform"]: r for r in json.loads(run(env, "ranges", "show", "--json").output)}
    assert again["xbox"]["max_id"] == 16_000_000 and again["xbox"]["changes"] == 1
    assert again["xbox"]["last_change"]["by"] == "operator"
    assert again["xbox"]["last_change"]["from"] == 15_500_000
    assert again["ps"]["changes"] == 0
    assert "xbox  5000-16000000" in run(env, "ranges", "show").output


@pytest.mark.parametrize(("args", "message"), [
    (("xbox", "5000-1100000000"), "xbox ids stay below"),
    (("ps", "10-20"), "ps ids start at"),
    (("ps", "1085000000-1073740000"), "need 0 < min <= max"),
    (("xbox", "many"), "is not 'min-max'"),
])
def test_ranges_set_refuses_what_cannot_be_a_range(
    db_settings: Settings, args: tuple[str, str], message: str
) -> None:
    env = {"BATTLETRACKER_DATABASE_URL": db_settings.database_url}
    done = run(env, "ranges", "set", *args)
    assert done.exit_code == 2 and message in done.output, done.output
    with engine_for(db_settings).connect() as conn:
        history = conn.execute(text("SELECT history FROM platform_ranges")).scalars().all()
    assert all(h == [] for h in history)


def test_cycle_list_shows_the_night_and_its_failed_chunks(night: dict[str, Any]) -> None:
    rows = json.loads(run(night["env"], "cycle", "list", "--json").output)
    assert len(rows) == 1
    (row,) = rows
    assert row["date"] == night["date"].isoformat() and row["status"] == "done"
    assert row["chunks_stored"] == row["chunks_total"] > 0
    assert row["chunks_failed"] == 0 and row["accounts"] > 0

    with engine_for(night["settings"]).begin() as conn:
        conn.execute(text("UPDATE chunks SET status = 'failed' "
                          "WHERE id = (SELECT min(id) FROM chunks)"))
    try:
        out = run(night["env"], "cycle", "list").output
        assert "cycle retry --date DATE" in out
        assert json.loads(run(night["env"], "cycle", "list", "--json").output)[0][
            "chunks_failed"] == 1
    finally:
        with engine_for(night["settings"]).begin() as conn:
            conn.execute(text("UPDATE chunks SET status = 'stored' WHERE status = 'failed'"))


def test_export_date_re_exports_a_day(night: dict[str, Any], standin: StandIn) -> None:
    env = {**night["env"], "BATTLETRACKER_ELASTICSEARCH_URL": standin.url}
    day = night["date"]
    done = run(env, "export", "--date", day.isoformat(), "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    with engine_for(night["settings"]).connect() as conn:
        totals = conn.execute(text("SELECT count(*) FROM total_battles WHERE date = :d"),
                              {"d": day}).scalar_one()
    index = f"total_battles-{day:%Y.%m.%d}"
    assert report["documents"][index] == totals == len(standin.indices[index]) > 0
    again = run(env, "export", "--date", day.isoformat())  # overwrites, never doubles
    assert again.exit_code == 0 and f"{index} {totals}" in again.output
    assert len(standin.indices[index]) == totals


def test_export_names_what_is_missing(night: dict[str, Any], standin: StandIn) -> None:
    unknown = run({**night["env"], "BATTLETRACKER_ELASTICSEARCH_URL": standin.url},
                  "export", "--date", "2001-01-01")
    assert unknown.exit_code == 1 and "no cycle recorded 2001-01-01" in unknown.output
    unset = run(night["env"], "export")
    assert unset.exit_code == 2 and "elasticsearch_url is not set" in unset.output


def test_export_kibana_installs_templates_and_loads_the_objects(
    night: dict[str, Any], standin: StandIn
) -> None:
    env = {**night["env"], "BATTLETRACKER_ELASTICSEARCH_URL": standin.url,
           "BATTLETRACKER_KIBANA_URL": standin.url}
    done = run(env, "export", "kibana")
    assert done.exit_code == 0, done.output
    assert "saved objects loaded" in done.output
    assert ("dashboard", "battletracker-night") in standin.saved_objects
    assert "battletracker-daily" in standin.policies
    assert set(standin.templates) == {"battletracker-total_battles",
                                      "battletracker-diff_battles", "battletracker-players"}
