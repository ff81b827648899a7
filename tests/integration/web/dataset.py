"""A small simulated multi-day crawl written straight into the tables, for web tests.

Deterministic (seeded): a few hundred Xbox and PlayStation players over ``DAYS`` nights,
with daily diffs, snapshots, the players' current counters, deliberately tied players,
accounts created during the period, finished cycles, tonight's cycle half fetched by
three named nodes, and platform ranges. Boards and daily activity are then materialised
by :mod:`battletracker.stats.materialise`, as the pipeline does after ``compute_diffs``.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from sqlalchemy import text

from battletracker.db import copy_rows, engine_for
from battletracker.models import COUNTERS
from battletracker.pipeline.partitions import ensure_month_partitions
from battletracker.settings import Settings
from battletracker.stats.activity import materialise_activity
from battletracker.stats.materialise import materialise

__all__ = ["DAYS", "FIRST_DAY", "LAST_DAY", "NODES", "Dataset", "populate"]

FIRST_DAY = dt.date(2026, 3, 1)
DAYS = 14
LAST_DAY = FIRST_DAY + dt.timedelta(days=DAYS - 1)
NODES = ("node-alpha", "node-bravo", "node-charlie")
XBOX_BASE = 5_000
PS_BASE = 1_073_741_000
DAILY = ("account_id", "date", "platform", *COUNTERS)
PLAYER = ("account_id", "platform", "nickname", "created_at", "last_battle_time",
          "last_seen", *COUNTERS)


def _unix(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC).timestamp())


def _diff(rng: random.Random, battles: int) -> dict[str, int]:
    wins = rng.randint(0, battles)
    draws = rng.randint(0, battles - wins) // 4
    shots = battles * rng.randint(5, 12)
    return {
        "battles": battles, "wins": wins, "losses": battles - wins - draws, "draws": draws,
        "spotted": rng.randint(0, battles * 2), "frags": rng.randint(0, battles * 2),
        "damage_dealt": battles * rng.randint(200, 2500),
        "damage_received": battles * rng.randint(200, 2000),
        "dropped_capture_points": rng.randint(0, battles),
        "capture_points": rng.randint(0, battles * 3), "xp": battles * rng.randint(200, 900),
        "hits": rng.randint(0, shots), "shots": shots,
        "survived_battles": rng.randint(0, battles),
    }


@dataclass
class Dataset:
    """What was written, for brute-force checks."""

    #: account_id -> platform, nickname, current counters.
    platform: dict[int, str] = field(default_factory=dict)
    nickname: dict[int, str] = field(default_factory=dict)
    current: dict[int, dict[str, int]] = field(default_factory=dict)
    #: (account_id, date) -> that day's diff.
    diffs: dict[tuple[int, dt.date], dict[str, int]] = field(default_factory=dict)
    #: Accounts whose current counters equal another's (ties on every board).
    tied: list[tuple[int, int]] = field(default_factory=list)
    current_cycle_id: int = 0

    def window_counters(self, window: str) -> dict[int, dict[str, int]]:
        """Counters of a board window as of LAST_DAY (``all``: current counters)."""
        if window == "all":
            return self.current
        days = {"day": 1, "week": 7, "month": 30}[window]
        first = LAST_DAY - dt.timedelta(days=days - 1)
        out: dict[int, dict[str, int]] = {}
        for (aid, day), diff in self.diffs.items():
            if first <= day <= LAST_DAY:
                acc = out.setdefault(aid, dict.fromkeys(COUNTERS, 0))
                for c in COUNTERS:
                    acc[c] += diff[c]
        return out


def populate(settings: Settings, *, players: int = 360, seed: int = 5) -> Dataset:
    rng = random.Random(seed)
    data = Dataset()
    ids = [XBOX_BASE + 7 * i for i in range(players // 2)]
    ids += [PS_BASE + 11 * i for i in range(players - players // 2)]
    created: dict[int, int] = {}
    for aid in ids:
        data.platform[aid] = "xbox" if aid < 1_000_000_000 else "ps"
        data.nickname[aid] = f"{'Xb' if aid < 1_000_000_000 else 'Ps'}_Tanker_{aid % 100000}"
        if rng.random() < 0.1:  # created during the period: starts from zero
            data.current[aid] = dict.fromkeys(COUNTERS, 0)
            created[aid] = _unix(FIRST_DAY + dt.timedelta(days=rng.randrange(DAYS)))
        else:
            data.current[aid] = _diff(rng, rng.randint(50, 20_000))
            created[aid] = _unix(dt.date(2019, 1, 1)) + rng.randrange(10**8)
    # Ties: a few pairs share every current counter (and never play in the period).
    quiet = set()
    for a, b in zip(ids[10:20:2], ids[11:21:2], strict=True):
        data.current[b] = dict(data.current[a])
        data.tied.append((a, b))
        quiet |= {a, b}
    totals: list[tuple[object, ...]] = []
    diffs: list[tuple[object, ...]] = []
    last_seen = {aid: FIRST_DAY for aid in ids}
    for d in range(DAYS):
        day = FIRST_DAY + dt.timedelta(days=d)
        for aid in ids:
            if aid in quiet or created[aid] > _unix(day) or rng.random() < 0.45:
                continue
            big = rng.random() < 0.06  # a marathon day: enough for the win-rate rule
            diff = _diff(rng, rng.randint(100, 160) if big else rng.randint(1, 40))
            data.diffs[(aid, day)] = diff
            cur = data.current[aid]
            for c in COUNTERS:
                cur[c] += diff[c]
            last_seen[aid] = day
            diffs.append((aid, day, data.platform[aid], *(diff[c] for c in COUNTERS)))
            totals.append((aid, day, data.platform[aid], *(cur[c] for c in COUNTERS)))
    rows = [(aid, data.platform[aid], data.nickname[aid], created[aid], created[aid] + 3600,
             last_seen[aid], *(data.current[aid][c] for c in COUNTERS)) for aid in ids]
    engine = engine_for(settings)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        ensure_month_partitions(conn, FIRST_DAY)
        ensure_month_partitions(conn, LAST_DAY + dt.timedelta(days=1))
        copy_rows(conn, "players", PLAYER, rows)
        copy_rows(conn, "total_battles", DAILY, totals)
        copy_rows(conn, "diff_battles", DAILY, diffs)
        for d in range(DAYS):
            day = FIRST_DAY + dt.timedelta(days=d)
            start = now - dt.timedelta(days=DAYS - d, hours=2)
            cid = conn.execute(text(
                "INSERT INTO cycles (date, status, chunks_total, chunks_stored, ids_total, "
                "accounts, rejected_results, changed_players, new_players, started_at, "
                "fetched_at, diffed_at, finished_at, status_changed_at, notes) VALUES "
                "(:day, 'done', 6, 6, 60000, :acc, 0, :chg, 0, :start, :fetched, :fetched, "
                ":fetched, :fetched, '{}') RETURNING id"),
                {"day": day, "acc": len(ids), "start": start,
                 "chg": sum(1 for (_, dd) in data.diffs if dd == day),
                 "fetched": start + dt.timedelta(hours=3)}).scalar_one()
            for k in range(6):
                _chunk(conn, cid, k, "stored", NODES[k % 3], start + dt.timedelta(minutes=k))
        # Tonight: 40 chunks, 25 stored (the last ten in the last 15 minutes).
        cid = conn.execute(text(
            "INSERT INTO cycles (date, status, chunks_total, chunks_stored, ids_total, "
            "accounts, rejected_results, started_at, status_changed_at, notes) VALUES "
            "(:day, 'fetching', 40, 25, 400000, 9000, 1, :start, :start, '{}') RETURNING id"),
            {"day": LAST_DAY + dt.timedelta(days=1),
             "start": now - dt.timedelta(hours=1)}).scalar_one()
        data.current_cycle_id = cid
        for k in range(40):
            status = ("stored" if k < 25 else "dispatched" if k < 30 else "pending" if k < 38
                      else "rejected" if k == 38 else "failed")
            when = now - dt.timedelta(minutes=(50 - 2 * k) if k < 15 else (25 - k) // 2 + 1)
            _chunk(conn, cid, k, status, NODES[k % 3] if status != "pending" else None, when)
        for plat, lo, hi in (("xbox", XBOX_BASE, XBOX_BASE + 2_000_000),
                             ("ps", PS_BASE, PS_BASE + 2_000_000)):
            conn.execute(text(
                "INSERT INTO platform_ranges (platform, min_id, max_id, history) VALUES "
                "(:p, :lo, :hi, CAST(:h AS jsonb))"),
                {"p": plat, "lo": lo, "hi": hi,
                 "h": f'[{{"date": "{FIRST_DAY}", "from": {hi - 200000}, "to": {hi}}}]'})
    materialise(engine, LAST_DAY, activity=False)
    with engine.begin() as conn:
        for d in range(DAYS):
            materialise_activity(conn, FIRST_DAY + dt.timedelta(days=d))
    return data


def _chunk(conn: object, cycle_id: int, k: int, status: str, node: str | None,
           when: dt.datetime) -> None:
    stored = status == "stored"
    conn.execute(text(  # type: ignore[attr-defined]
        "INSERT INTO chunks (cycle_id, platform, first_id, last_id, status, attempts, node, "
        "accounts, error, dispatched_at, stored_at, fetch_seconds) VALUES "
        "(:c, :p, :f, :l, :s, :a, :n, :acc, :err, :disp, :st, :fs)"),
        {"c": cycle_id, "p": "xbox" if k % 2 else "ps", "f": k * 10_000, "l": k * 10_000 + 9_999,
         "s": status, "a": 3 if status in ("rejected", "failed") else 1, "n": node,
         "acc": 360 if stored else None,
         "err": "SOURCE_NOT_AVAILABLE x5" if status == "failed" else None,
         "disp": when - dt.timedelta(seconds=40), "st": when if stored else None,
         "fs": 38.5 if stored else None})
