"""Seeded synthetic players and diffs, and a brute-force board in pure Python."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection

from battletracker.db import copy_rows
from battletracker.models import COUNTERS, PS_THRESHOLD
from battletracker.pipeline.partitions import ensure_partitions_between
from battletracker.stats.interfaces import LeaderboardScorer, min_battles_in
from battletracker.stats.materialise import window_bounds

Counters = dict[str, int]



def _counters(rng: random.Random, battles: int) -> Counters:
    # Values drawn from small sets so that equal scores (ties) are common.
    wins = battles * rng.choice((40, 45, 50, 50, 55, 60)) // 100
    draws = battles // 100
    survived = battles * rng.choice((20, 30, 40)) // 100
    return {
        "battles": battles,
        "wins": wins,
        "losses": battles - wins - draws,
        "draws": draws,
        "spotted": battles * rng.choice((1, 2)),
        "frags": battles * rng.choice((5, 8, 10, 12)) // 10,
        "damage_dealt": battles * rng.choice((500, 800, 1000, 1500)),
        "damage_received": battles * rng.choice((600, 900)),
        "dropped_capture_points": rng.randrange(0, battles + 1),
        "capture_points": rng.randrange(0, battles + 1),
        "xp": battles * rng.choice((400, 500, 600)),
        "hits": battles * 5,
        "shots": battles * 7,
        "survived_battles": survived,
    }


@dataclass
class Dataset:
    as_of: dt.date
    players: dict[int, tuple[str, Counters]] = field(default_factory=dict)
    #: (account_id, date) -> (platform, diff counters)
    diffs: dict[tuple[int, dt.date], tuple[str, Counters]] = field(default_factory=dict)
    created: dict[int, int] = field(default_factory=dict)
    tie_group: list[int] = field(default_factory=list)

    def window_counters(self, window: str) -> dict[int, tuple[str, Counters]]:
        bounds = window_bounds(window, self.as_of)
        if bounds is None:
            return dict(self.players)
        sums: dict[int, tuple[str, Counters]] = {}
        for (account, day), (platform, diff) in self.diffs.items():
            if bounds[0] <= day <= bounds[1]:
                _, acc = sums.setdefault(account, (platform, dict.fromkeys(COUNTERS, 0)))
                for c in COUNTERS:
                    acc[c] += diff[c]
        return sums


def build(seed: int = 5, n_players: int = 400, as_of: dt.date = dt.date(2026, 1, 20)) -> Dataset:
    rng = random.Random(seed)
    data = Dataset(as_of=as_of)
    first_day = dt.date(2025, 12, 10)
    last_day = dt.date(2026, 1, 25)  # diffs after as_of must be ignored by the boards
    days = [(first_day + dt.timedelta(days=i)) for i in range((last_day - first_day).days + 1)]
    ids = [1000 + i * 7 for i in range(n_players // 2)]
    ids += [PS_THRESHOLD + 100 + i * 3 for i in range(n_players - n_players // 2)]
    for account in ids:
        platform = "xbox" if account < PS_THRESHOLD else "ps"
        battles = rng.choice((0, 5, 50, 99, 100, 150, 300, 1000, 1000, 5000))
        data.players[account] = (platform, _counters(rng, battles))
        data.created[account] = 1_767_225_600 + rng.randrange(0, 50) * 86_400  # from 2026-01-01
        for day in rng.sample(days, rng.randrange(0, 25)):
            daily = rng.choice((1, 3, 10, 10, 20, 40, 60, 120))
            data.diffs[account, day] = (platform, _counters(rng, daily))
    # Identical counters everywhere: a block of exact ties on every board and window.
    tie_ids = [ids[3], ids[10], ids[len(ids) - 5], ids[1]]
    same = _counters(random.Random(99), 400)
    for account in tie_ids:
        platform = data.players[account][0]
        data.players[account] = (platform, dict(same))
        for key in [k for k in data.diffs if k[0] == account]:
            del data.diffs[key]
        for day in (as_of, as_of - dt.timedelta(days=3)):
            data.diffs[account, day] = (platform, dict(same))
    data.tie_group = sorted(tie_ids)
    return data


def insert(conn: Connection, data: Dataset) -> None:
    days = [d for _, d in data.diffs]
    ensure_partitions_between(conn, min(days), max(days))
    copy_rows(
        conn, "players",
        ("account_id", "platform", "nickname", "created_at", "last_battle_time",
         *COUNTERS, "last_seen"),
        [(a, p, f"nick{a}", data.created[a], None, *(c[k] for k in COUNTERS), data.as_of)
         for a, (p, c) in data.players.items()],
    )
    rows = [(a, d, p, *(c[k] for k in COUNTERS)) for (a, d), (p, c) in data.diffs.items()]
    copy_rows(conn, "diff_battles", ("account_id", "date", "platform", *COUNTERS), rows)
    # total_battles: ``battles`` is a running total of the diffs (what compute_diffs would
    # store); the other columns are left as the day's diffs, which nothing here reads.
    totals: dict[int, int] = defaultdict(int)
    trows = []
    for (a, d), (p, c) in sorted(data.diffs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        totals[a] += c["battles"]
        trows.append((a, d, p, totals[a], *(c[k] for k in COUNTERS[1:])))
    copy_rows(conn, "total_battles", ("account_id", "date", "platform", *COUNTERS), trows)


def brute_force(
    counters: Mapping[int, tuple[str, Counters]], scorer: LeaderboardScorer, platform: str,
    window: str | None = None,
) -> list[tuple[int, int, float, int]]:
    """(rank, account_id, score, battles) in rank order, from the scorer's Python rule
    (and, given the ``window``, the window's raised minimum of battles)."""
    floor = 0 if window is None else min_battles_in(scorer, window)
    scored = []
    for account, (plat, c) in counters.items():
        if platform != "all" and plat != platform:
            continue
        if c.get("battles", 0) < floor:
            continue
        s = scorer.score(c)
        if s is not None:
            scored.append((-s, account, s, c["battles"]))
    scored.sort()
    return [(i + 1, a, s, b) for i, (_, a, s, b) in enumerate(scored)]


def ids_of(entries: Iterable[object]) -> list[int]:
    return [e.account_id for e in entries]  # type: ignore[attr-defined]
