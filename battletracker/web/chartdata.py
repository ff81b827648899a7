"""Chart specs for ``static/charts.js``, built from query results (pure functions)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from ..stats.queries import ActivityRow, BoardInfo, DayRow, Entry
from .api.schemas import CreditRow

__all__ = ["activity_charts", "credit_chart", "page_scores_chart", "player_charts"]

Spec = dict[str, Any]
PLATFORM_NAMES = {"xbox": "Xbox", "ps": "PlayStation"}


def _per_platform(rows: Sequence[ActivityRow], value: Callable[[ActivityRow], float | None]
                  ) -> list[dict[str, Any]]:
    points: dict[str, list[list[Any]]] = defaultdict(list)
    for r in rows:
        v = value(r)
        if v is not None:
            points[r.platform].append([r.date.isoformat(), v])
    return [{"name": PLATFORM_NAMES.get(p, p), "points": points[p]}
            for p in ("xbox", "ps") if points.get(p)]


def activity_charts(rows: Sequence[ActivityRow]) -> list[Spec]:
    """The dashboard's charts: each activity measure over time, one line per platform;
    unique actives over 7/30/90 days summed over platforms (an account has one)."""
    unique: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        day = r.date.isoformat()
        unique["7 days"][day] += r.unique_7d
        unique["30 days"][day] += r.unique_30d
        unique["90 days"][day] += r.unique_90d
    return [
        {"key": "active", "type": "line", "title": "Active accounts per day",
         "unit": "accounts", "series": _per_platform(rows, lambda r: r.active_accounts)},
        {"key": "battles", "type": "line", "title": "Battles per day", "unit": "battles",
         "series": _per_platform(rows, lambda r: r.battles)},
        {"key": "new", "type": "line", "title": "New accounts per day", "unit": "accounts",
         "series": _per_platform(rows, lambda r: r.new_accounts)},
        {"key": "avg", "type": "line", "title": "Average battles per active account",
         "unit": "battles", "series": _per_platform(rows, lambda r: r.avg_battles_per_active)},
        {"key": "unique", "type": "line",
         "title": "Unique active accounts over the last 7 / 30 / 90 days",
         "unit": "accounts", "note": "Both platforms together.",
         "series": [{"name": name, "points": [[d, n] for d, n in sorted(days.items())]}
                    for name, days in unique.items()]},
    ]


def _ratio(num: int, den: int, scale: float = 1.0) -> float | None:
    return num / den * scale if den else None


def player_charts(history: Sequence[DayRow]) -> list[Spec]:
    """A player's daily battles, total battles, win rate and damage per battle."""

    def series(name: str, value: Callable[[DayRow], float | None]) -> list[dict[str, Any]]:
        pts = [[d.date.isoformat(), v] for d in history if (v := value(d)) is not None]
        return [{"name": name, "points": pts}]

    return [
        {"key": "battles", "type": "line", "title": "Battles per day", "unit": "battles",
         "series": series("battles", lambda d: d.battles)},
        {"key": "total", "type": "line", "title": "Total battles", "unit": "battles",
         "series": series("total", lambda d: d.total_battles)},
        {"key": "winrate", "type": "line", "title": "Win rate per day", "unit": "%",
         "series": series("win rate", lambda d: _ratio(d.diffs.get("wins", 0), d.battles, 100))},
        {"key": "damage", "type": "line", "title": "Average damage per day",
         "unit": "damage", "series": series(
             "damage/battle", lambda d: _ratio(d.diffs.get("damage_dealt", 0), d.battles))},
    ]


def page_scores_chart(board: BoardInfo, entries: Sequence[Entry]) -> Spec:
    """The scores of the page shown, by rank."""
    return {"type": "bars", "title": f"{board.title} on this page", "unit": board.unit,
            "labels": [f"#{e.rank} {e.nickname or e.account_id}" for e in entries],
            "values": [e.score for e in entries]}


def credit_chart(rows: Sequence[CreditRow], *, top: int = 20) -> Spec:
    """Accounts fetched per node, for the busiest ``top`` nodes."""
    shown = list(rows)[:top]
    return {"type": "bars", "title": f"Accounts fetched per node (top {top})",
            "unit": "accounts", "labels": [r.node for r in shown],
            "values": [r.accounts for r in shown]}
