"""The contracts of the stats package (stat handlers, leaderboard scorers) and its errors.

Written once, here; everything else in :mod:`battletracker.stats` is an implementation.

Counters
    Both contracts take a ``Mapping[str, int]`` keyed by the names in
    :data:`battletracker.models.COUNTERS` (``battles``, ``wins``, ..., ``survived_battles``).
    The mapping holds either a player's current counters (the *all time* window, from
    ``players``) or the sum of a window's daily diffs (``diff_battles``); an implementation
    must not care which.

Stat handlers (:class:`StatHandler`)
    Turn counters into named stats (``{"win_rate": 51.2, ...}``) for the player page. A
    stat that cannot be computed (no battles) is ``None``. Pure: no I/O, no globals.

Leaderboard scorers (:class:`LeaderboardScorer`)
    Turn counters into one score, higher is better, or ``None`` when the player is not
    eligible (e.g. win rate needs >= 100 battles in the window). A scorer gives its rule
    twice:

    * ``score(counters)``: pure Python. The reference: brute-force verification compares
      every materialised board with it, and it is all a third-party scorer has to write.
    * ``sql_score()`` / ``sql_eligible()``: the same rule as SQL expressions over the
      summed counter columns (``battles``, ``wins``, ...), so that a board over millions of
      players is materialised by one set-based statement inside PostgreSQL.

    The trade-off: a scorer whose ``sql_score()`` returns ``None`` still works, but its
    boards are materialised by streaming every candidate row out of PostgreSQL, scoring it
    in Python and COPYing the scores back (:mod:`battletracker.stats.materialise`): about
    an order of magnitude slower, and fine for a few boards. A scorer that gives SQL must
    make it *equivalent* to ``score``: same eligibility, and the same float arithmetic in
    the same order (cast to ``float8`` before dividing; PostgreSQL's ``100.0`` literal is
    ``numeric``), or ties and near-ties rank differently from the Python reference. The
    helpers in :mod:`battletracker.stats.builtin` generate both forms from one definition.

    Ranking is fixed and not the scorer's business: score descending, then account id
    ascending, ranks 1..N without gaps or shared ranks. A board where lower is better
    negates its score. ``NaN`` and infinite scores are treated as ineligible.

Errors::

    StatsError
     ├── UnknownBoard      (also KeyError)    no scorer of that name        -> HTTP 404
     ├── UnknownPlayer     (also KeyError)    no such account / not ranked  -> HTTP 404
     ├── UnknownWindow     (also ValueError)  not day|week|month|all        -> HTTP 422
     ├── UnknownPlatform   (also ValueError)  not all|xbox|ps               -> HTTP 422
     ├── InvalidQuery      (also ValueError)  offset/limit/n/days out of range -> HTTP 422
     └── ScorerError                          a plugin broke the contract (name, SQL)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

__all__ = [
    "PLATFORMS",
    "WINDOWS",
    "Counters",
    "InvalidQuery",
    "LeaderboardScorer",
    "ScorerError",
    "StatHandler",
    "StatsError",
    "UnknownBoard",
    "UnknownPlatform",
    "UnknownPlayer",
    "UnknownWindow",
    "min_battles_in",
]

#: A player's counters, current or summed over a window (see the module docstring).
Counters = Mapping[str, int]

#: Board windows: the cycle's date, the 7 and 30 days ending on it, and current counters.
WINDOWS: tuple[str, ...] = ("day", "week", "month", "all")
#: Board platforms: both together, or one.
PLATFORMS: tuple[str, ...] = ("all", "xbox", "ps")


class StatsError(Exception):
    """Root of every error raised by :mod:`battletracker.stats`."""

    def __str__(self) -> str:
        # KeyError's __str__ quotes its argument; keep plain messages for every subclass.
        return str(self.args[0]) if self.args else self.__class__.__name__


class UnknownBoard(StatsError, KeyError):
    """No leaderboard scorer of that name is registered."""


class UnknownPlayer(StatsError, KeyError):
    """The account is not known, or not ranked on the board asked for."""


class UnknownWindow(StatsError, ValueError):
    """A window other than ``day``, ``week``, ``month`` or ``all``."""


class UnknownPlatform(StatsError, ValueError):
    """A platform other than ``all``, ``xbox`` or ``ps``."""


class InvalidQuery(StatsError, ValueError):
    """A paging or range parameter out of bounds (negative offset, limit too large...)."""


class ScorerError(StatsError):
    """A scorer or stat handler broke its contract (bad name, missing attribute)."""


@runtime_checkable
class StatHandler(Protocol):
    """Turns counters into named stats for the player page.

    ``name`` identifies the handler (same rule as board names); ``stats`` returns a fresh dict
    of stat name -> value, ``None`` where undefined (e.g. a rate with zero battles).
    Deterministic and pure.
    """

    name: str

    def stats(self, counters: Counters) -> dict[str, float | None]: ...


@runtime_checkable
class LeaderboardScorer(Protocol):
    """Turns counters into a leaderboard score (higher is better) or ``None``.

    Attributes:
        name: the board's key in URLs and table names: lower case letters, digits and
            single underscores, at most 32 characters, equal to the entry-point name it is
            registered under.
        title: short human title ("Win rate").
        description: one sentence, including the eligibility rule.
        unit: unit of the score for display ("%", "battles", "damage/battle").
        format: a ``str.format`` pattern for one score (``"{:.2f}"``).
        min_battles: battles needed in the window to be ranked (documentation and UI;
            the rule itself is ``score``/``sql_eligible``).

    Optional attribute (read with ``getattr``, so scorers written without it keep
    working): ``window_min_battles``, a mapping of window -> battles that *raises* the
    minimum over those windows. The materialiser applies it itself (``battles >= n`` on
    the window's counters, on top of the scorer's rule), and the board's description in
    the API and on the pages shows it (:func:`min_battles_in`). A rate over a month or
    all time means little on a handful of battles, and every player ranked is a row.
    """

    name: str
    title: str
    description: str
    unit: str
    format: str
    min_battles: int

    def score(self, counters: Counters) -> float | None:
        """The score of these counters, or ``None`` when not eligible. Pure."""
        ...

    def sql_score(self) -> str | None:
        """A float8 SQL expression over the counter columns equal to ``score``, or ``None``
        when the scorer has no SQL form (materialised through the Python fallback)."""
        ...

    def sql_eligible(self) -> str | None:
        """A boolean SQL expression over the counter columns: the eligibility rule."""
        ...


def min_battles_in(scorer: LeaderboardScorer, window: str) -> int:
    """Battles a player needs in ``window`` to be ranked on ``scorer``'s board: its
    ``min_battles``, raised over some windows by its optional ``window_min_battles``."""
    raised: Mapping[str, int] = getattr(scorer, "window_min_battles", None) or {}
    return max(int(scorer.min_battles), int(raised.get(window, 0)))
