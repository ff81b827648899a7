"""The built-in leaderboard scorers and stat handlers, and helpers to write new ones.

:class:`Scorer` and :class:`RatioScorer` generate the Python rule and its SQL twin from
one definition, which is how the built-ins keep the two equivalent (see
:mod:`battletracker.stats.interfaces`). The scorers are registered in ``setup.cfg``
under the ``battletracker.leaderboards`` entry-point group, exactly as a third party
would register its own.

Minimum battles in the window, per board (``min_battles``, raised over the longer
windows by ``window_min_battles``; shown with the board in the API and on its page):

* win rate: 100 in every window (the issue's rule; below that a rate is mostly noise,
  so the day board is short and the month and all-time boards carry the meaning),
* average damage, frags per battle and survival rate: 10 over a day, 25 over a week,
  100 over a month and all time -- enough that one lucky battle does not top a short
  board, and the win-rate rule where 100 battles are within every regular's reach (as
  game sites rank rates). It also keeps those boards from ranking every account that
  ever played a battle: each ranked player is a row (issue 16: all boards within twice
  the disk of ``players``),
* battles: 1 (anyone who played: a count board drops nobody).
"""

from __future__ import annotations

import math
from typing import ClassVar

from .interfaces import Counters

__all__ = [
    "AverageDamageScorer",
    "AverageStats",
    "BattlesScorer",
    "FragsPerBattleScorer",
    "RateStats",
    "RatioScorer",
    "Scorer",
    "SurvivalRateScorer",
    "WinRateScorer",
    "ratio",
]


def ratio(numerator: int, denominator: int, factor: float = 1.0) -> float | None:
    """``numerator / denominator * factor`` in float arithmetic, ``None`` for 0/0 or x/0.

    The order (divide, then multiply) is the one :meth:`RatioScorer.sql_score` emits.
    """
    if not denominator:
        return None
    return numerator / denominator * factor


class Scorer:
    """Base class of a scorer: eligibility is ``battles >= min_battles``.

    Subclasses set the class attributes and implement :meth:`value` (and, to be
    materialised in SQL, :meth:`sql_score`). A subclass without SQL works through the
    Python fallback.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    unit: ClassVar[str] = ""
    format: ClassVar[str] = "{:.2f}"
    min_battles: ClassVar[int] = 1

    def eligible(self, counters: Counters) -> bool:
        return counters.get("battles", 0) >= self.min_battles

    def value(self, counters: Counters) -> float | None:
        raise NotImplementedError

    def score(self, counters: Counters) -> float | None:
        if not self.eligible(counters):
            return None
        v = self.value(counters)
        if v is None or not math.isfinite(v):
            return None
        return v

    def sql_score(self) -> str | None:
        return None

    def sql_eligible(self) -> str | None:
        return f"battles >= {int(self.min_battles)}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


#: The raised minimums of the average/rate boards (see the module docstring).
RATE_WINDOW_MIN_BATTLES = {"week": 25, "month": 100, "all": 100}


class RatioScorer(Scorer):
    """``numerator / denominator * factor``, in Python and in SQL from the same fields."""

    numerator: ClassVar[str]
    denominator: ClassVar[str] = "battles"
    factor: ClassVar[float] = 1.0

    def value(self, counters: Counters) -> float | None:
        return ratio(counters[self.numerator], counters[self.denominator], self.factor)

    def sql_score(self) -> str:
        # float8 on both sides so PostgreSQL divides exactly as Python does; NULLIF keeps
        # a zero denominator from raising (the row is then dropped as ineligible).
        return (
            f"({self.numerator}::float8 / NULLIF({self.denominator}, 0)::float8"
            f" * {float(self.factor)!r}::float8)"
        )


class BattlesScorer(Scorer):
    name = "battles"
    title = "Battles"
    description = "Battles played in the window (at least 1)."
    unit = "battles"
    format = "{:,.0f}"
    min_battles = 1

    def value(self, counters: Counters) -> float:
        return float(counters["battles"])

    def sql_score(self) -> str:
        return "battles::float8"


class WinRateScorer(RatioScorer):
    name = "win_rate"
    title = "Win rate"
    description = "Share of battles won, in percent (at least 100 battles in the window)."
    unit = "%"
    format = "{:.2f}"
    min_battles = 100
    numerator = "wins"
    factor = 100.0


class AverageDamageScorer(RatioScorer):
    name = "avg_damage"
    title = "Average damage"
    description = ("Damage dealt per battle (at least 10 battles in a day, 25 in a week, "
                   "100 in a month or all time).")
    unit = "damage/battle"
    format = "{:,.0f}"
    min_battles = 10
    window_min_battles = RATE_WINDOW_MIN_BATTLES
    numerator = "damage_dealt"


class FragsPerBattleScorer(RatioScorer):
    name = "frags_per_battle"
    title = "Frags per battle"
    description = ("Enemy vehicles destroyed per battle (at least 10 battles in a day, 25 in "
                   "a week, 100 in a month or all time).")
    unit = "frags/battle"
    format = "{:.2f}"
    min_battles = 10
    window_min_battles = RATE_WINDOW_MIN_BATTLES
    numerator = "frags"


class SurvivalRateScorer(RatioScorer):
    name = "survival_rate"
    title = "Survival rate"
    description = ("Share of battles survived, in percent (at least 10 battles in a day, 25 "
                   "in a week, 100 in a month or all time).")
    unit = "%"
    format = "{:.2f}"
    min_battles = 10
    window_min_battles = RATE_WINDOW_MIN_BATTLES
    numerator = "survived_battles"
    factor = 100.0


# -- stat handlers --------------------------------------------------------------------


class RateStats:
    """Percentages of battles: win, loss, draw, survival; and hit rate of shots."""

    name = "rates"

    def stats(self, counters: Counters) -> dict[str, float | None]:
        b = counters.get("battles", 0)
        return {
            "win_rate": ratio(counters.get("wins", 0), b, 100.0),
            "loss_rate": ratio(counters.get("losses", 0), b, 100.0),
            "draw_rate": ratio(counters.get("draws", 0), b, 100.0),
            "survival_rate": ratio(counters.get("survived_battles", 0), b, 100.0),
            "hit_rate": ratio(counters.get("hits", 0), counters.get("shots", 0), 100.0),
        }


class AverageStats:
    """Per-battle averages, and the damage and kill/death ratios."""

    name = "averages"

    def stats(self, counters: Counters) -> dict[str, float | None]:
        b = counters.get("battles", 0)
        deaths = b - counters.get("survived_battles", 0)
        return {
            "avg_damage": ratio(counters.get("damage_dealt", 0), b),
            "avg_damage_received": ratio(counters.get("damage_received", 0), b),
            "avg_frags": ratio(counters.get("frags", 0), b),
            "avg_spotted": ratio(counters.get("spotted", 0), b),
            "avg_xp": ratio(counters.get("xp", 0), b),
            "avg_capture_points": ratio(counters.get("capture_points", 0), b),
            "avg_defence_points": ratio(counters.get("dropped_capture_points", 0), b),
            "damage_ratio": ratio(
                counters.get("damage_dealt", 0), counters.get("damage_received", 0)
            ),
            "kill_death_ratio": ratio(counters.get("frags", 0), deaths) if deaths > 0 else None,
        }
