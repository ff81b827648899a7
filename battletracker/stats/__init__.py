"""Leaderboards and player stats: pluggable scorers and handlers, materialised boards.

The public surface is re-exported here; see :mod:`.interfaces` for the contracts and
errors, :mod:`.queries` for the read API the web app uses, :mod:`.materialise` for how
boards are built, :mod:`.tasks` for the Celery step.
"""

from __future__ import annotations

from .interfaces import (
    PLATFORMS as PLATFORMS,
)
from .interfaces import (
    WINDOWS as WINDOWS,
)
from .interfaces import (
    InvalidQuery as InvalidQuery,
)
from .interfaces import (
    LeaderboardScorer as LeaderboardScorer,
)
from .interfaces import (
    ScorerError as ScorerError,
)
from .interfaces import (
    StatHandler as StatHandler,
)
from .interfaces import (
    StatsError as StatsError,
)
from .interfaces import (
    UnknownBoard as UnknownBoard,
)
from .interfaces import (
    UnknownPlatform as UnknownPlatform,
)
from .interfaces import (
    UnknownPlayer as UnknownPlayer,
)
from .interfaces import (
    UnknownWindow as UnknownWindow,
)

__all__ = [
    "PLATFORMS",
    "WINDOWS",
    "InvalidQuery",
    "LeaderboardScorer",
    "ScorerError",
    "StatHandler",
    "StatsError",
    "UnknownBoard",
    "UnknownPlatform",
    "UnknownPlayer",
    "UnknownWindow",
]
