"""The registry of leaderboard scorers and stat handlers, loaded once from entry points.

Scorers come from the ``battletracker.leaderboards`` entry-point group (battletracker's
own built-ins are registered there too, in ``setup.cfg``); stat handlers are the
built-ins plus the ``battletracker.stat_handlers`` group. An entry point names a class
(instantiated without arguments) or an instance.

Loading is lazy and happens once per process, on first use, guarded by a lock. A plugin
that fails to import or breaks the contract is skipped with a warning and listed in
:attr:`Registry.errors`: one broken third-party package must not take every board down.
:func:`reload` reads the entry points again (tests, or after installing a plugin into a
running process).
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .builtin import AverageStats, RateStats
from .interfaces import LeaderboardScorer, ScorerError, StatHandler, UnknownBoard

__all__ = [
    "HANDLER_GROUP",
    "SCORER_GROUP",
    "Registry",
    "default_registry",
    "get_scorer",
    "reload",
    "scorers",
    "stat_handlers",
    "valid_name",
]

log = logging.getLogger(__name__)

SCORER_GROUP = "battletracker.leaderboards"
HANDLER_GROUP = "battletracker.stat_handlers"
#: Board names become parts of table and index names (``lbe__<name>__<window>__rank``):
#: lower case, single underscores (``__`` separates the parts), at most
#: :data:`MAX_NAME` characters so every derived name stays under PostgreSQL's 63 bytes.
NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
MAX_NAME = 32
_SCORER_ATTRS = ("title", "description", "unit", "format", "min_battles")
#: Built-ins first in this order; third-party boards after them, by name.
_BUILTIN_ORDER = ("battles", "win_rate", "avg_damage", "frags_per_battle", "survival_rate")


def valid_name(name: str) -> bool:
    """Whether ``name`` may name a board or a stat handler."""
    return len(name) <= MAX_NAME and NAME_RE.fullmatch(name) is not None


def _instantiate(obj: Any) -> Any:
    return obj() if isinstance(obj, type) else obj


class Registry:
    """Scorers and handlers, read from entry points on first use."""

    def __init__(
        self,
        *,
        scorer_group: str = SCORER_GROUP,
        handler_group: str = HANDLER_GROUP,
        discover: Callable[[str], Iterable[EntryPoint]] | None = None,
    ) -> None:
        self._scorer_group = scorer_group
        self._handler_group = handler_group
        self._discover = discover or (lambda group: entry_points(group=group))
        self._lock = threading.Lock()
        self._scorers: dict[str, LeaderboardScorer] | None = None
        self._handlers: list[StatHandler] = []
        #: One message per plugin that was skipped, for the operator.
        self.errors: list[str] = []

    # -- loading ---------------------------------------------------------------------

    def _load(self) -> dict[str, LeaderboardScorer]:
        with self._lock:
            if self._scorers is not None:
                return self._scorers
            errors: list[str] = []
            found: dict[str, LeaderboardScorer] = {}
            for ep in self._discover(self._scorer_group):
                try:
                    scorer = _instantiate(ep.load())
                    self._check_scorer(ep.name, scorer)
                except Exception as exc:  # a plugin's failure is its own, not ours
                    errors.append(f"scorer {ep.name!r} ({ep.value}): {exc}")
                    continue
                if ep.name in found:
                    errors.append(f"scorer {ep.name!r} ({ep.value}): name already taken")
                    continue
                found[ep.name] = scorer
            order = {n: i for i, n in enumerate(_BUILTIN_ORDER)}
            ordered = dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))
            handlers: list[StatHandler] = [RateStats(), AverageStats()]
            for ep in self._discover(self._handler_group):
                try:
                    handler = _instantiate(ep.load())
                    if not isinstance(handler, StatHandler) or not valid_name(
                        str(getattr(handler, "name", ""))
                    ):
                        raise ScorerError("not a StatHandler (name, stats(counters))")
                    if any(h.name == handler.name for h in handlers):
                        raise ScorerError("name already taken")
                except Exception as exc:
                    errors.append(f"stat handler {ep.name!r} ({ep.value}): {exc}")
                    continue
                handlers.append(handler)
            for message in errors:
                log.warning("skipped a stats plugin: %s", message)
            self.errors = errors
            self._handlers = handlers
            self._scorers = ordered
            return ordered

    @staticmethod
    def _check_scorer(ep_name: str, scorer: Any) -> None:
        if not valid_name(ep_name):
            raise ScorerError(
                f"board name must match {NAME_RE.pattern} and have <= {MAX_NAME} characters"
            )
        if getattr(scorer, "name", None) != ep_name:
            raise ScorerError(
                f"scorer.name {getattr(scorer, 'name', None)!r} differs from the entry point"
            )
        missing = [a for a in _SCORER_ATTRS if not hasattr(scorer, a)]
        if missing or not callable(getattr(scorer, "score", None)):
            raise ScorerError(f"not a LeaderboardScorer (missing {missing or ['score']})")
        for method in ("sql_score", "sql_eligible"):
            if not callable(getattr(scorer, method, None)):
                raise ScorerError(f"not a LeaderboardScorer (missing {method}())")

    def reload(self) -> None:
        """Forget what was loaded; the next use reads the entry points again."""
        importlib.invalidate_caches()
        with self._lock:
            self._scorers = None
            self._handlers = []

    # -- lookups ---------------------------------------------------------------------

    def scorers(self) -> dict[str, LeaderboardScorer]:
        """Every board's scorer by name: built-ins first, then third parties by name."""
        return dict(self._load())

    def scorer(self, name: str) -> LeaderboardScorer:
        """The scorer of board ``name``; :class:`UnknownBoard` if there is none."""
        try:
            return self._load()[name]
        except (KeyError, TypeError):
            raise UnknownBoard(f"no leaderboard named {name!r}") from None

    def handlers(self) -> list[StatHandler]:
        self._load()
        return list(self._handlers)


_default = Registry()


def default_registry() -> Registry:
    """The process-wide registry used by queries, materialisation and tasks."""
    return _default


def scorers() -> dict[str, LeaderboardScorer]:
    return _default.scorers()


def get_scorer(name: str) -> LeaderboardScorer:
    return _default.scorer(name)


def stat_handlers() -> list[StatHandler]:
    return _default.handlers()


def reload() -> None:
    _default.reload()
