"""What an account row may hold: the game's reality written down once, for fetcher and server.

A leaf module (no database, no HTTP): a volunteer's fetcher turns API objects into rows
with :func:`account_row`, and the server checks every row it receives with
:func:`row_shape` (types: a flaw means a broken or hostile node, the whole result is
refused) and :func:`row_problem` (values: a flaw means this one account is odd, the row
is set aside with its reason and the rest of the chunk is stored).

Bounds, and why (console World of Tanks, Xbox 360 edition launched February 2014):

- ``battles`` <= 2,000,000: one battle every 3 minutes, day and night, since launch is
  ~2.2 M; the most active real accounts have a few hundred thousand.
- ``wins``, ``losses``, ``draws``, ``survived_battles`` <= ``battles`` and
  ``wins + losses + draws`` <= ``battles``: each battle ends one way, once.
- ``frags`` and ``spotted`` <= 30 per battle: at most 15 enemies in the game's largest
  standard battles (15 v 15), doubled for any event mode.
- ``damage_dealt`` <= 100,000 per battle: 15 enemies of at most ~3,500 hit points each is
  ~52 k; doubled for event modes with more or tougher vehicles.
- ``damage_received`` <= 20,000 per battle: a vehicle has at most ~3,500 hit points;
  generous for modes with repairs.
- ``capture_points``, ``dropped_capture_points`` <= 200 per battle: a base is captured
  at 100 points; twice for modes with two bases.
- ``xp`` <= 50,000 per battle: the best battles earn a few thousand base experience;
  premium and event multipliers stay well below this.
- ``shots`` <= 2,000 per battle: a quick-firing autocannon in a 15-minute battle fires a
  few hundred rounds; ``hits`` <= ``shots``.
- ``created_at`` between 2013-01-01 (the console beta) and now + 1 day (clock skew);
  ``last_battle_time`` (0 or None: never) between ``created_at`` and now + 1 day.
- nickname: 1-64 characters, no control characters (Unicode Cc) and no lone surrogates
  (Cs, not encodable in UTF-8). Everything else is accepted: Xbox gamertags hold spaces,
  non-Latin letters and suffixes like ``#1234``; no-break spaces, zero-width joiners and
  emoji newer than Python's Unicode tables occur.

With these bounds every counter is below 2e11, so any sum over accounts or days in the
activity and the boards (at most ~4e7 accounts) stays far below 2^63.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from .constants import COUNTERS

__all__ = [
    "COLUMNS",
    "COUNTER_PER_BATTLE",
    "FIRST_CREATED_AT",
    "MAX_BATTLES",
    "MAX_NICKNAME",
    "Row",
    "RowShapeError",
    "account_row",
    "counter_limit",
    "nickname_problem",
    "row_problem",
    "row_shape",
]

#: Column order of a result row; the staging COPY uses the same order.
COLUMNS: tuple[str, ...] = ("account_id", "nickname", "created_at", "last_battle_time", *COUNTERS)
Row = tuple[Any, ...]

MAX_BATTLES = 2_000_000
#: Each counter's bound as a multiple of ``battles`` (see the module docstring for why).
COUNTER_PER_BATTLE: Mapping[str, int] = {
    "battles": 1,
    "wins": 1,
    "losses": 1,
    "draws": 1,
    "spotted": 30,
    "frags": 30,
    "damage_dealt": 100_000,
    "damage_received": 20_000,
    "dropped_capture_points": 200,
    "capture_points": 200,
    "xp": 50_000,
    "hits": 2_000,
    "shots": 2_000,
    "survived_battles": 1,
}
MAX_NICKNAME = 64
FIRST_CREATED_AT = int(dt.datetime(2013, 1, 1, tzinfo=dt.UTC).timestamp())
#: Clocks disagree: a timestamp up to a day ahead of the server's is still believed.
CLOCK_SKEW = 86_400
_BAD_CATEGORIES = {"Cc", "Cs"}
_FIRST_COUNTER = 4


class RowShapeError(ValueError):
    """A row whose types are wrong: no honest fetcher sends it."""


def counter_limit(name: str, battles: int) -> int:
    """The highest value ``name`` may have after ``battles`` battles."""
    return COUNTER_PER_BATTLE[name] * battles


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def nickname_problem(nickname: str) -> str | None:
    """Why ``nickname`` cannot be a real one, or None."""
    if not 1 <= len(nickname) <= MAX_NICKNAME:
        return f"nickname length {len(nickname)} not within 1..{MAX_NICKNAME}"
    for ch in nickname:
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            return f"nickname holds control character U+{ord(ch):04X}"
    return None


def account_row(account_id: int, obj: Mapping[str, Any]) -> Row:
    """The compact row of one API account object (what a fetcher sends).

    Only the types are checked here (``ValueError`` for an object no API answer holds);
    values are the server's business (:func:`row_problem`): an odd value is the API's
    truth about one account and must not make the fetcher fail its whole chunk.

    It runs for every account of a night on the node, so the common case (every counter
    a plain ``int``) is one pass; anything else takes the counter-by-counter path.
    """
    get = obj.get
    if get("account_id", account_id) != account_id:
        raise ValueError(f"object under key {account_id} has another account_id")
    nickname = get("nickname")
    if not isinstance(nickname, str):
        raise ValueError(f"account {account_id} has no nickname")
    stats = get("statistics") or {}
    counters = (stats.get("all") if isinstance(stats, dict) else None) or {}
    if not isinstance(counters, dict):
        raise ValueError(f"account {account_id}: statistics.all is not an object")
    values = list(map(counters.get, COUNTERS))
    if not all(type(v) is int for v in values):  # missing (None), bool, float, ...
        values = [_counter(account_id, name, v) for name, v in zip(COUNTERS, values, strict=True)]
    created, last = get("created_at"), get("last_battle_time")
    return (
        account_id,
        nickname,
        created if type(created) is int or _is_int(created) else None,
        last if type(last) is int or _is_int(last) else None,
        *values,
    )


def _counter(account_id: int, name: str, value: object) -> int:
    """One counter of :func:`account_row`: absent is 0, any other non-integer a flaw."""
    if value is None:
        return 0
    if not _is_int(value):
        raise ValueError(f"account {account_id}: counter {name} = {value!r}")
    return value  # type: ignore[return-value]


def row_shape(value: object, first_id: int, last_id: int) -> Row:
    """``value`` as a row if its types are a row's and its id is in the chunk."""
    if not isinstance(value, list | tuple) or len(value) != len(COLUMNS):
        raise RowShapeError(f"row: expected a list of {len(COLUMNS)} values")
    account_id, nickname, created_at, last_battle, *counters = value
    if not _is_int(account_id) or not first_id <= account_id <= last_id:
        raise RowShapeError(f"row: account id {account_id!r} outside the chunk")
    if not isinstance(nickname, str):
        raise RowShapeError(f"row {account_id}: nickname is not a string")
    for name, t in (("created_at", created_at), ("last_battle_time", last_battle)):
        if t is not None and not _is_int(t):
            raise RowShapeError(f"row {account_id}: {name} {t!r} is not an integer")
    for name, c in zip(COUNTERS, counters, strict=True):
        if not _is_int(c):
            raise RowShapeError(f"row {account_id}: counter {name} = {c!r} is not an integer")
    return tuple(value)


def row_problem(row: Sequence[Any], *, now: int) -> str | None:
    """The first rule of the game's reality that ``row`` breaks (a reason), or None.

    ``row`` has the shape :func:`row_shape` checked; ``now`` is Unix seconds.
    """
    nickname, created_at, last_battle = row[1], row[2], row[3]
    c = dict(zip(COUNTERS, row[_FIRST_COUNTER:], strict=True))
    battles = c["battles"]
    if not 0 <= battles <= MAX_BATTLES:
        return f"battles {battles} not within 0..{MAX_BATTLES}"
    for name, value in c.items():
        if value < 0:
            return f"{name} {value} is negative"
        limit = counter_limit(name, battles)
        if value > limit:
            return f"{name} {value} above {limit} ({COUNTER_PER_BATTLE[name]} per battle)"
    if c["wins"] + c["losses"] + c["draws"] > battles:
        return "wins + losses + draws above battles"
    if c["hits"] > c["shots"]:
        return f"hits {c['hits']} above shots {c['shots']}"
    latest = now + CLOCK_SKEW
    if created_at is not None and not FIRST_CREATED_AT <= created_at <= latest:
        return f"created_at {created_at} not within {FIRST_CREATED_AT}..{latest}"
    if last_battle:  # 0 or None: never played
        earliest = created_at if created_at is not None else FIRST_CREATED_AT
        if not earliest <= last_battle <= latest:
            return f"last_battle_time {last_battle} not within {earliest}..{latest}"
    return nickname_problem(nickname)
