"""The rules of the game (battletracker.validation) against what the fetcher really sends.

Every account the simulator's population holds, on any day, converted by the fetcher's
own ``account_row``, must pass the rules: no honest row is ever set aside. And each rule,
broken on such a row, is caught with its reason.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from battletracker import validation
from battletracker.models import COUNTERS
from battletracker.pipeline.fetch import account_row
from battletracker.validation import (
    COLUMNS,
    COUNTER_PER_BATTLE,
    MAX_BATTLES,
    MAX_NICKNAME,
    nickname_problem,
    row_problem,
    row_shape,
)
from battletracker.wargaming.simulator import PS_MIN, XBOX_MIN, Population

NOW = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp())


def fetched_rows(pop: Population, day: int) -> list[tuple[Any, ...]]:
    return [account_row(i, obj) for i, obj in pop.truth(day)]


@pytest.mark.parametrize("day", [0, 1, 7, 60])
def test_a_whole_population_passes_on_any_day(day: int) -> None:
    pop = Population(seed=3, xbox_ids=3_000, ps_ids=3_000, new_per_day=200)
    rows = fetched_rows(pop, day)
    assert len(rows) > 3_000
    for r in rows:
        shaped = row_shape(list(r), r[0], r[0])
        assert row_problem(shaped, now=NOW) is None, r


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    day=st.integers(0, 300),
    index=st.integers(0, 50_000),
    platform=st.sampled_from([XBOX_MIN, PS_MIN]),
)
def test_any_simulated_account_passes(seed: int, day: int, index: int, platform: int) -> None:
    pop = Population(seed=seed, xbox_ids=40_000, ps_ids=40_000, new_per_day=100)
    obj = pop.account(platform + index, day)
    if obj is None:
        return
    r = account_row(platform + index, obj)
    now = int(dt.datetime.combine(pop.date_of(day + 1), dt.time(), dt.UTC).timestamp())
    assert row_problem(row_shape(list(r), r[0], r[0]), now=now) is None


def _simulated_row(seed: int, index: int) -> list[Any]:
    pop = Population(seed=seed, xbox_ids=5_000, ps_ids=0, new_per_day=0, fill=1.0)
    while True:
        obj = pop.account(XBOX_MIN + index, 3)
        assert obj is not None
        if obj["statistics"]["all"]["battles"] > 50:
            return list(account_row(XBOX_MIN + index, obj))
        index = (index + 1) % 5_000


_col = COLUMNS.index


def _break(r: list[Any], rule: str) -> None:
    b = r[_col("battles")]
    if rule == "battles":
        r[_col("battles")] = MAX_BATTLES + 1
    elif rule == "negative":
        r[_col("frags")] = -1
    elif rule.startswith("bound:"):
        name = rule.split(":")[1]
        r[_col(name)] = COUNTER_PER_BATTLE[name] * b + 1
    elif rule == "outcomes":
        r[_col("draws")] = b - r[_col("wins")] - r[_col("losses")] + 1
    elif rule == "hits":
        r[_col("hits")] = r[_col("shots")] + 1
    elif rule == "created_future":
        r[_col("created_at")] = NOW + 2 * 86_400
    elif rule == "created_past":
        r[_col("created_at")] = 1_000_000_000
    elif rule == "last_before_created":
        r[_col("last_battle_time")] = r[_col("created_at")] - 1
    elif rule == "last_future":
        r[_col("last_battle_time")] = NOW + 2 * 86_400
    elif rule == "nickname_long":
        r[1] = "x" * (MAX_NICKNAME + 1)
    elif rule == "nickname_empty":
        r[1] = ""
    elif rule == "nickname_control":
        r[1] = r[1][:3] + "\x1b" + r[1][3:]


RULES = ["battles", "negative", "outcomes", "hits", "created_future", "created_past",
         "last_before_created", "last_future", "nickname_long", "nickname_empty",
         "nickname_control", *(f"bound:{c}" for c in COUNTERS if c != "battles")]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**31), index=st.integers(0, 4_999), rule=st.sampled_from(RULES))
def test_each_rule_broken_on_an_honest_row_is_caught(seed: int, index: int, rule: str) -> None:
    r = _simulated_row(seed, index)
    assert row_problem(r, now=NOW) is None
    _break(r, rule)
    assert row_problem(r, now=NOW) is not None, rule


_honest_chars = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="\x00"
)


@settings(max_examples=300, deadline=None)
@given(st.text(_honest_chars, min_size=1, max_size=MAX_NICKNAME))
def test_nicknames_of_any_script_spacing_or_emoji_pass(nickname: str) -> None:
    assert nickname_problem(nickname) is None


@settings(max_examples=200, deadline=None)
@given(
    st.text(_honest_chars, max_size=30),
    st.characters(categories=("Cc",)),
    st.text(_honest_chars, max_size=30),
)
def test_a_control_character_anywhere_is_caught(before: str, control: str, after: str) -> None:
    assert unicodedata.category(control) == "Cc"
    assert nickname_problem(before + control + after) is not None


def test_the_bounds_keep_every_sum_far_from_bigint() -> None:
    """The largest counter any account may have, times 40 M accounts, fits in 2^63."""
    largest = max(COUNTER_PER_BATTLE.values()) * MAX_BATTLES
    assert largest * 40_000_000 < 2**63


def _reference_account_row(account_id: int, obj: dict[str, Any]) -> tuple[Any, ...]:
    """``account_row`` as it was written first (plain and slow): the verdicts to keep."""
    if obj.get("account_id", account_id) != account_id:
        raise ValueError(f"object under key {account_id} has another account_id")
    nickname = obj.get("nickname")
    if not isinstance(nickname, str):
        raise ValueError(f"account {account_id} has no nickname")
    stats = obj.get("statistics") or {}
    counters = (stats.get("all") if isinstance(stats, dict) else None) or {}
    if not isinstance(counters, dict):
        raise ValueError(f"account {account_id}: statistics.all is not an object")
    values = []
    for name in COUNTERS:
        v = counters.get(name)
        v = 0 if v is None else v
        if not (isinstance(v, int) and not isinstance(v, bool)):
            raise ValueError(f"account {account_id}: counter {name} = {v!r}")
        values.append(v)

    def stamp(key: str) -> int | None:
        t = obj.get(key)
        return t if isinstance(t, int) and not isinstance(t, bool) else None

    return (account_id, nickname, stamp("created_at"), stamp("last_battle_time"), *values)


_ODD = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=3), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(), st.integers(), max_size=1),
)  # fmt: skip
_COUNTER = st.one_of(st.integers(0, 10**6), _ODD)


@st.composite
def _api_objects(draw: st.DrawFn) -> tuple[int, dict[str, Any]]:
    account_id = draw(st.integers(1, 2**40))
    counters: dict[str, Any] = {
        n: draw(st.integers(0, 10**6)) for n in COUNTERS if draw(st.integers(0, 9)) > 0
    }
    how = draw(st.sampled_from(["honest", "one odd", "any"]))
    if how == "one odd":  # a single odd value (a bool, a float...) among plain integers
        counters = {n: draw(st.integers(0, 10**6)) for n in COUNTERS}
        counters[draw(st.sampled_from(COUNTERS))] = draw(_ODD)
    elif how == "any":
        counters = {n: draw(_COUNTER) for n in COUNTERS if draw(st.integers(0, 9)) > 0}
    obj: dict[str, Any] = {
        "account_id": draw(st.sampled_from([account_id, account_id, account_id + 1, None])),
        "nickname": draw(st.one_of(st.text(min_size=1, max_size=8), _ODD)),
        "created_at": draw(st.one_of(st.integers(0, 2**32), _ODD)),
        "last_battle_time": draw(st.one_of(st.integers(0, 2**32), _ODD)),
        "statistics": draw(st.sampled_from(["dict", "none", "odd", "all_odd"])),
    }  # fmt: skip
    kind = obj["statistics"]
    obj["statistics"] = (
        {"all": counters} if kind == "dict" else None if kind == "none"
        else draw(_ODD) if kind == "odd" else {"all": draw(_ODD)}
    )  # fmt: skip
    for key in ("account_id", "nickname", "created_at", "last_battle_time"):
        if draw(st.integers(0, 9)) == 0:
            del obj[key]
    return account_id, obj


@settings(max_examples=600)
@given(_api_objects())
def test_the_fast_account_row_gives_the_reference_verdicts(
    case: tuple[int, dict[str, Any]],
) -> None:
    """The node's conversion, sped up, accepts, refuses and converts exactly as before."""
    account_id, obj = case
    try:
        expected: Any = _reference_account_row(account_id, obj)
    except ValueError as exc:
        expected = exc
    try:
        got: Any = validation.account_row(account_id, obj)
    except ValueError as exc:
        got = exc
    if isinstance(expected, Exception):
        assert isinstance(got, Exception) and str(got) == str(expected)
    else:
        assert got == expected
        assert [type(v) for v in got] == [type(v) for v in expected]
