"""A deterministic, seeded population of console accounts that plays a little every day.

Everything is a pure function of ``(seed, account_id, day)``: no state is stored, so two
``Population`` objects with the same arguments agree on every account of every day, and
tests can compute the *truth* a crawl must reproduce without running the simulator.

Counters are derived from one number, an account's cumulative battle count, through
fixed per-account rates and nested floors (``wins = t*w // 1000``,
``losses = (t - wins) - draws``...). Each counter is therefore monotonic in battles, and
battles only grow, so every counter is monotonic day over day and the invariants
``wins + losses + draws == battles``, ``survived_battles <= battles`` and
``hits <= shots`` hold by construction. The cost is O(day) hashes per account.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from battletracker.constants import COUNTERS

__all__ = ["PLATFORMS", "PS_MIN", "XBOX_MIN", "Population"]

#: Lowest Xbox and PlayStation account ids of the real API.
XBOX_MIN = 5_000
PS_MIN = 1_073_740_000
PLATFORMS: dict[str, int] = {"xbox": XBOX_MIN, "ps": PS_MIN}

_M64 = (1 << 64) - 1
_DAY = 86_400
#: Console World of Tanks launched in 2014; initial accounts were created since then.
_LAUNCH = int(dt.datetime(2014, 2, 12, tzinfo=dt.UTC).timestamp())
#: A brand-new account plays on the day it is created with this chance (of 2**32).
_NEWCOMER_PLAYS = int(0.75 * 2**32)
_SYLLABLES = ("ka", "ro", "tan", "mi", "vex", "lo", "dra", "ku", "zen", "pa", "gor", "si",
              "bel", "ux", "ne", "tor")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if not n:
            return out


class Population:
    """The accounts of both platforms on any day since ``start`` (day 0)."""

    def __init__(
        self,
        seed: int = 1,
        xbox_ids: int = 20_000,
        ps_ids: int = 20_000,
        new_per_day: int = 500,
        fill: float = 0.63,
        active_share: float = 0.3,
        start: dt.date = dt.date(2026, 1, 1),
    ) -> None:
        if min(xbox_ids, ps_ids, new_per_day) < 0 or not (0 <= fill <= 1 >= active_share >= 0):
            raise ValueError("sizes must be >= 0, fill and active_share within [0, 1]")
        self.seed = seed
        self.initial = {"xbox": xbox_ids, "ps": ps_ids}
        self.new_per_day = new_per_day
        self.fill = fill
        self.active_share = active_share
        self.start = start
        self._salt = _mix(seed * 0x2545F4914F6CDD1D + 0x5EED)
        self._fill = int(fill * 2**32)
        self._active = int(active_share * 2**32)
        self._t0 = int(dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC).timestamp())

    def __repr__(self) -> str:
        return (f"Population(seed={self.seed}, xbox_ids={self.initial['xbox']}, "
                f"ps_ids={self.initial['ps']}, new_per_day={self.new_per_day})")

    def date_of(self, day: int) -> dt.date:
        """The calendar date of ``day`` (day 0 is ``start``)."""
        return self.start + dt.timedelta(days=day)

    def id_range(self, platform: str, day: int) -> range:
        """Every id that may hold an account of ``platform`` on ``day`` (existing or not)."""
        low = PLATFORMS[platform]
        return range(low, low + self.initial[platform] + max(day, 0) * self.new_per_day)

    def exists(self, account_id: int, day: int) -> bool:
        """Whether ``account_id`` holds an account on ``day``."""
        platform = self._platform(account_id)
        return (platform is not None and account_id in self.id_range(platform, day)
                and (self._hash(account_id) & 0xFFFFFFFF) < self._fill)

    def top_id(self, platform: str, day: int) -> int:
        """The highest existing id of ``platform`` on ``day``; LookupError if none exists."""
        ids = self.id_range(platform, day)
        for account_id in reversed(ids):
            if (self._hash(account_id) & 0xFFFFFFFF) < self._fill:
                return account_id
        raise LookupError(f"no {platform} account exists on day {day}")

    def truth(self, day: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every existing account of both platforms on ``day``, sorted by id."""
        for platform in ("xbox", "ps"):
            for account_id in self.id_range(platform, day):
                account = self.account(account_id, day)
                if account is not None:
                    yield account_id, account

    def account(self, account_id: int, day: int) -> dict[str, Any] | None:
        """The full API account object of ``account_id`` on ``day``, or None if there is none."""
        platform = self._platform(account_id)
        if platform is None or day < 0:
            return None
        index = account_id - PLATFORMS[platform]
        initial = self.initial[platform]
        if index >= initial + day * self.new_per_day:
            return None
        h = self._hash(account_id)
        if (h & 0xFFFFFFFF) >= self._fill:
            return None
        h2, h3 = _mix(h), _mix(h ^ 0xA5A5A5A5)
        if index < initial:
            # Older ids are older accounts; jitter keeps neighbours apart.
            span = self._t0 - 2 * _DAY - _LAUNCH
            created = _LAUNCH + span * index // max(initial, 1) + (h3 >> 40) % _DAY
            u = (h3 >> 8) & 0xFFFF
            battles = 0 if (h3 & 0xFF) < 8 else 1 + u * u * u * 30_000 // 2**48
            # The last battle before day 0 lies between creation and the start.
            last = created + ((self._t0 - created) * ((h3 >> 24) & 0xFFFF) >> 16)
            last = last if battles else created
            first_day = 0
        else:
            first_day = (index - initial) // self.new_per_day + 1
            created = self._t0 + first_day * _DAY + (h3 >> 40) % 82_800
            battles, last = 0, created
        for d in range(first_day, day + 1):
            hd = _mix(h ^ (d * 0x9E3779B97F4A7C15 & _M64))
            plays = _NEWCOMER_PLAYS if d == first_day and index >= initial else self._active
            if (hd & 0xFFFFFFFF) < plays:
                battles += 1 + (hd >> 32) % 24
                last = max(self._t0 + d * _DAY + (hd >> 40) % 82_800, created + 60)
        stats_all = self._counters(battles, h2)
        # updated_at trails the last battle by under an hour, still within that day.
        updated = (last if battles else created) + (h >> 44) % 3_600
        company = self._counters((h3 >> 56) % 40 if (h2 >> 60) == 0 else 0, h3)
        return {
            "account_id": account_id,
            "nickname": self._nickname(platform, index, h2),
            "created_at": created,
            "updated_at": updated,
            "last_battle_time": last,
            "global_rating": stats_all["wins"] * 3_000 // battles + battles // 10 if battles else 0,
            "private": None,
            "statistics": {"all": stats_all, "company": company},
        }

    # -- internals ---------------------------------------------------------------------

    def _hash(self, account_id: int) -> int:
        return _mix(self._salt ^ account_id)

    @staticmethod
    def _platform(account_id: int) -> str | None:
        if account_id >= PS_MIN:
            return "ps"
        return "xbox" if account_id >= XBOX_MIN else None

    @staticmethod
    def _counters(t: int, h: int) -> dict[str, int]:
        """Every counter from ``t`` battles and per-account rates taken from the bits of ``h``."""
        b = [(h >> s) & 0xFF for s in range(0, 64, 8)]
        wins = t * (420 + b[0] * 160 // 255) // 1000
        draws = (t - wins) * (10 + b[1] * 30 // 255) // 1000
        shots = t * (5_000 + b[2] * 6_000 // 255) // 1000
        values = (
            t, wins, t - wins - draws, draws,
            t * (300 + b[3] * 1_200 // 255) // 1000,  # spotted
            t * (300 + b[4] * 1_000 // 255) // 1000,  # frags
            t * (300 + b[5] * 7),  # damage_dealt
            t * (400 + b[6] * 4),  # damage_received
            t * (200 + b[7] * 3) // 1000,  # dropped_capture_points
            t * (500 + b[3] * 8) // 1000,  # capture_points
            t * (250 + b[4] * 2),  # xp
            shots * (600 + b[5] * 300 // 255) // 1000,  # hits
            shots,
            t * (150 + b[6] * 350 // 255) // 1000,  # survived_battles
        )
        return dict(zip(COUNTERS, values, strict=True))

    @staticmethod
    def _nickname(platform: str, index: int, h: int) -> str:
        """A readable, unique name: syllables, ``_`` and the id's offset in base 36."""
        word = "".join(_SYLLABLES[(h >> (4 * i)) & 0xF] for i in range(2 + (h >> 20) % 3))
        name = f"{word.capitalize()}_{_b36(index)}"
        return name + "-x" if platform == "xbox" else name
