"""Built-in scorers: eligibility, values, and the SQL twin's shape."""

from __future__ import annotations

import math

import pytest

from battletracker.models import COUNTERS
from battletracker.stats.builtin import (
    AverageDamageScorer,
    AverageStats,
    BattlesScorer,
    FragsPerBattleScorer,
    RateStats,
    RatioScorer,
    Scorer,
    SurvivalRateScorer,
    WinRateScorer,
    ratio,
)
from battletracker.stats.interfaces import LeaderboardScorer, StatHandler


def counters(**values: int) -> dict[str, int]:
    c = dict.fromkeys(COUNTERS, 0)
    c.update(values)
    return c


SCORERS = [BattlesScorer(), WinRateScorer(), AverageDamageScorer(), FragsPerBattleScorer(),
           SurvivalRateScorer()]


@pytest.mark.parametrize("scorer", SCORERS, ids=lambda s: s.name)
def test_builtins_fulfil_the_contract(scorer):
    assert isinstance(scorer, LeaderboardScorer)
    assert scorer.title and scorer.description and scorer.format.format(1.5)
    assert scorer.sql_score() and scorer.sql_eligible() == f"battles >= {scorer.min_battles}"
    assert scorer.score(counters()) is None  # nobody with zero battles is ranked


@pytest.mark.parametrize(
    ("scorer", "below", "at"),
    [(WinRateScorer(), 99, 100), (AverageDamageScorer(), 9, 10),
     (FragsPerBattleScorer(), 9, 10), (SurvivalRateScorer(), 9, 10), (BattlesScorer(), 0, 1)],
    ids=lambda x: getattr(x, "name", str(x)),
)
def test_eligibility_is_a_minimum_number_of_battles(scorer, below, at):
    assert scorer.score(counters(battles=below, wins=below // 2)) is None
    assert scorer.score(counters(battles=at, wins=at // 2)) is not None


def test_values():
    c = counters(battles=200, wins=101, damage_dealt=250_000, frags=230, survived_battles=61)
    assert WinRateScorer().score(c) == 101 / 200 * 100
    assert AverageDamageScorer().score(c) == 1250.0
    assert FragsPerBattleScorer().score(c) == 1.15
    assert SurvivalRateScorer().score(c) == 61 / 200 * 100
    assert BattlesScorer().score(c) == 200.0


def test_ratio_sql_casts_to_float8_in_python_order():
    sql = WinRateScorer().sql_score()
    assert sql == "(wins::float8 / NULLIF(battles, 0)::float8 * 100.0::float8)"


def test_non_finite_scores_are_ineligible():
    class Weird(RatioScorer):
        name = "weird"
        title = description = "weird"
        numerator = "wins"
        denominator = "shots"

    assert Weird().score(counters(battles=5, wins=3, shots=0)) is None

    class Inf(Scorer):
        name = "inf"
        title = description = "inf"

        def value(self, counters):
            return math.inf

    assert Inf().score(counters(battles=5)) is None
    assert Inf().sql_score() is None  # no SQL: the Python fallback


def test_ratio_helper():
    assert ratio(1, 0) is None
    assert ratio(1, 4, 100.0) == 25.0


def test_stat_handlers():
    for handler in (RateStats(), AverageStats()):
        assert isinstance(handler, StatHandler)
        empty = handler.stats(counters())
        assert all(v is None for v in empty.values())
    c = counters(battles=10, wins=6, survived_battles=4, frags=12, hits=30, shots=40,
                 damage_dealt=10_000, damage_received=5_000)
    rates = RateStats().stats(c)
    assert rates["win_rate"] == 60.0 and rates["hit_rate"] == 75.0
    avgs = AverageStats().stats(c)
    assert avgs["avg_damage"] == 1000.0 and avgs["damage_ratio"] == 2.0
    assert avgs["kill_death_ratio"] == 2.0  # 12 frags over 6 deaths
