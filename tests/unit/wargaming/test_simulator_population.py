"""The simulated population: determinism, growth, monotonic counters and invariants."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from battletracker.models import COUNTERS
from battletracker.wargaming.simulator import PS_MIN, XBOX_MIN, Population

DAYS = range(6)
FIELDS = ["account_id", "nickname", "created_at", "updated_at", "last_battle_time",
          "global_rating", "private", "statistics"]


@pytest.fixture(scope="module")
def population() -> Population:
    return Population(seed=3, xbox_ids=2_000, ps_ids=1_500, new_per_day=200)


@pytest.fixture(scope="module")
def truths(population: Population) -> dict[int, dict[int, dict[str, Any]]]:
    return {day: dict(population.truth(day)) for day in DAYS}


def test_same_seed_agrees_and_another_seed_differs(population: Population) -> None:
    twin = Population(seed=3, xbox_ids=2_000, ps_ids=1_500, new_per_day=200)
    other = Population(seed=4, xbox_ids=2_000, ps_ids=1_500, new_per_day=200)
    assert list(twin.truth(2)) == list(population.truth(2))
    assert list(other.truth(2)) != list(population.truth(2))
    assert {i for i, _ in other.truth(0)} != {i for i, _ in population.truth(0)}


def test_ids_start_at_the_platform_minimums_and_fill_them(population: Population) -> None:
    ids = [account_id for account_id, _ in population.truth(0)]
    assert ids == sorted(ids)
    xbox = [i for i in ids if i < PS_MIN]
    ps = [i for i in ids if i >= PS_MIN]
    assert min(xbox) >= XBOX_MIN and max(xbox) < XBOX_MIN + 2_000
    assert min(ps) >= PS_MIN and max(ps) < PS_MIN + 1_500
    assert len(xbox) / 2_000 == pytest.approx(0.63, abs=0.04)
    assert len(ps) / 1_500 == pytest.approx(0.63, abs=0.04)


def test_ids_outside_the_ranges_have_no_account(population: Population) -> None:
    for account_id in (0, 1, XBOX_MIN - 1, XBOX_MIN + 2_000 + 200 * 2, 1_000_000_000,
                       PS_MIN - 1, PS_MIN + 1_500 + 200 * 2):
        assert population.account(account_id, 2) is None
        assert not population.exists(account_id, 2)
    assert population.account(population.top_id("xbox", 0), -1) is None


def test_new_ids_appear_at_the_top_each_day(
    population: Population, truths: dict[int, dict[int, dict[str, Any]]]
) -> None:
    for platform, low, initial in (("xbox", XBOX_MIN, 2_000), ("ps", PS_MIN, 1_500)):
        tops = [population.top_id(platform, day) for day in DAYS]
        assert tops == sorted(tops) and len(set(tops)) == len(tops)
        for day in DAYS:
            assert low + initial + 200 * day - 30 < tops[day] < low + initial + 200 * day
            assert population.id_range(platform, day) == range(low, low + initial + 200 * day)
    for day in DAYS[1:]:
        new = set(truths[day]) - set(truths[day - 1])
        assert set(truths[day - 1]) <= set(truths[day])
        assert len(new) == pytest.approx(2 * 200 * 0.63, rel=0.25)
        start = dt.datetime.combine(population.date_of(day), dt.time(), dt.UTC).timestamp()
        for account_id in new:
            assert start <= truths[day][account_id]["created_at"] < start + 86_400


def test_a_few_new_accounts_have_not_played_yet(
    truths: dict[int, dict[int, dict[str, Any]]]
) -> None:
    new = [a for i, a in truths[1].items() if i not in truths[0]]
    idle = [a for a in new if a["statistics"]["all"]["battles"] == 0]
    assert 0 < len(idle) < len(new) / 2


def test_counters_only_grow_and_about_active_share_play(
    truths: dict[int, dict[int, dict[str, Any]]]
) -> None:
    for day in DAYS[1:]:
        before, after = truths[day - 1], truths[day]
        played = 0
        for account_id, old in before.items():
            new_stats, old_stats = after[account_id]["statistics"], old["statistics"]
            for mode in ("all", "company"):
                for name in COUNTERS:
                    assert new_stats[mode][name] >= old_stats[mode][name], (account_id, name)
            played += new_stats["all"]["battles"] > old_stats["all"]["battles"]
            if new_stats["all"]["battles"] > old_stats["all"]["battles"]:
                assert after[account_id]["last_battle_time"] > old["last_battle_time"]
        assert played / len(before) == pytest.approx(0.3, abs=0.04)


def test_every_account_is_complete_and_consistent(
    population: Population, truths: dict[int, dict[int, dict[str, Any]]]
) -> None:
    nickname = re.compile(r"^[A-Za-z0-9_]{3,24}$")
    for day, accounts in truths.items():
        end = dt.datetime.combine(population.date_of(day + 1), dt.time(), dt.UTC).timestamp()
        names = set()
        for account_id, account in accounts.items():
            assert list(account) == FIELDS
            assert account["account_id"] == account_id and account["private"] is None
            name = account["nickname"]
            names.add(name)
            if account_id < PS_MIN:
                assert name.endswith("-x") and nickname.match(name[:-2])
            else:
                assert nickname.match(name)
            assert len(name) <= 24
            assert account["created_at"] <= account["last_battle_time"] <= account["updated_at"]
            assert account["updated_at"] < end
            assert isinstance(account["global_rating"], int)
            for mode in ("all", "company"):
                stats = account["statistics"][mode]
                assert tuple(stats) == COUNTERS
                assert all(type(v) is int and v >= 0 for v in stats.values())
                assert stats["wins"] + stats["losses"] + stats["draws"] == stats["battles"]
                assert stats["survived_battles"] <= stats["battles"]
                assert stats["hits"] <= stats["shots"]
        assert len(names) == len(accounts)


def test_population_has_variety(truths: dict[int, dict[int, dict[str, Any]]]) -> None:
    accounts = list(truths[0].values())
    battles = [a["statistics"]["all"]["battles"] for a in accounts]
    assert 0 in battles and max(battles) > 5_000
    assert sum(a["statistics"]["company"]["battles"] > 0 for a in accounts) > 0


def test_dates_and_validation() -> None:
    population = Population(start=dt.date(2026, 3, 30))
    assert population.date_of(3) == dt.date(2026, 4, 2)
    with pytest.raises(ValueError):
        Population(fill=1.5)
    with pytest.raises(ValueError):
        Population(new_per_day=-1)
    with pytest.raises(LookupError):
        Population(fill=0.0, xbox_ids=10).top_id("xbox", 0)
