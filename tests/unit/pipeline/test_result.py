"""validate_result: a volunteer's result is untrusted input; every flaw is named."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from battletracker.models import COUNTERS
from battletracker.pipeline.result import (
    COLUMNS,
    MAX_CHUNK_IDS,
    RESULT_VERSION,
    ChunkSpec,
    FetchResult,
    InvalidResult,
    validate_result,
)
from battletracker.validation import COUNTER_PER_BATTLE

XBOX_FIRST = 5_000
PS_FIRST = 1_073_740_000


def row(account_id: int, battles: int = 10, nickname: str | None = None) -> list[Any]:
    """A plausible row: every counter within the game's bounds for ``battles``."""
    b = battles
    counters = [b, b // 2, b // 3, 0, b, b, 900 * b, 700 * b, b, b, 400 * b, 4 * b, 6 * b, b // 4]
    assert len(counters) == len(COUNTERS)
    return [account_id, nickname or f"p{account_id}", 1_400_000_000, 1_700_000_000, *counters]


def set_aside(msg: dict[str, Any], match: str) -> FetchResult:
    """The result is accepted, the one odd row set aside with a reason matching ``match``."""
    result = validate_result(msg)
    assert len(result.set_aside) == 1, result.set_aside
    assert re.search(match, result.set_aside[0].reason), result.set_aside[0].reason
    assert len(result.rows) + 1 + result.empty == result.spec.size
    return result


def message(first: int = XBOX_FIRST, size: int = 100, accounts: int = 3, **extra: Any) -> dict:
    """A valid result of chunk 7 of cycle 3: ``accounts`` rows at the start, the rest empty."""
    msg = {
        "v": RESULT_VERSION,
        "cycle_id": 3,
        "chunk_id": 7,
        "platform": "xbox" if first < 1_000_000_000 else "ps",
        "first_id": first,
        "last_id": first + size - 1,
        "columns": list(COLUMNS),
        "rows": [row(first + i) for i in range(accounts)],
        "empty": size - accounts,
        "node": "node-1",
        "seconds": 1.5,
        "requests": 1,
        "limit_errors": 0,
        "retries": 0,
    }
    msg.update(extra)
    return msg


def rejects(msg: object, match: str) -> None:
    with pytest.raises(InvalidResult, match=match):
        validate_result(msg)


# -- accepted ------------------------------------------------------------------------------


def test_accepts_a_good_result() -> None:
    msg = message()
    result = validate_result(msg)
    assert isinstance(result, FetchResult)
    assert result.spec == ChunkSpec(7, 3, "xbox", XBOX_FIRST, XBOX_FIRST + 99)
    assert result.rows == [tuple(r) for r in msg["rows"]]
    assert (result.empty, result.node, result.seconds) == (97, "node-1", 1.5)
    assert result.stats == {"requests": 1, "limit_errors": 0, "retries": 0}


def test_round_trip_through_json() -> None:
    result = validate_result(message(first=PS_FIRST, accounts=5))
    again = validate_result(json.loads(json.dumps(result.to_message())))
    assert again == result


@pytest.mark.parametrize(
    "edit",
    [
        {"rows": [], "empty": 100},  # a chunk with no account at all
        {"node": "", "seconds": 0},
        {"rows": [[*row(XBOX_FIRST)[:2], None, None, *row(XBOX_FIRST)[4:]]], "empty": 99},
    ],
)
def test_accepts_edge_cases(edit: dict[str, Any]) -> None:
    validate_result(message(**edit))


def test_accepts_a_full_chunk_of_the_largest_span() -> None:
    msg = message(size=MAX_CHUNK_IDS, accounts=0)
    msg["rows"] = [row(XBOX_FIRST + i, battles=0) for i in range(0, MAX_CHUNK_IDS, 1000)]
    msg["empty"] = MAX_CHUNK_IDS - len(msg["rows"])
    assert len(validate_result(msg).rows) == 100


def test_optional_keys_may_be_left_out() -> None:
    msg = message()
    for k in ("node", "seconds", "requests", "limit_errors", "retries"):
        del msg[k]
    assert validate_result(msg).stats == {}


# -- rejected, each with its reason --------------------------------------------------------


@pytest.mark.parametrize("raw", [None, [], "result", 7, [message()]])
def test_not_an_object(raw: object) -> None:
    rejects(raw, "not an object")


def test_unknown_keys() -> None:
    rejects(message(extra_field=1), "unknown keys.*extra_field")


@pytest.mark.parametrize("v", [None, 0, 2, "1", True, 1.0])
def test_wrong_version(v: object) -> None:
    rejects(message(v=v), "version")


def test_missing_version() -> None:
    msg = message()
    del msg["v"]
    rejects(msg, "version")


def test_columns_must_match() -> None:
    rejects(message(columns=list(reversed(COLUMNS))), "columns")
    rejects(message(columns=list(COLUMNS)[:-1]), "columns")


@pytest.mark.parametrize("account_id", [XBOX_FIRST - 1, XBOX_FIRST + 100, PS_FIRST])
def test_ids_outside_the_chunk(account_id: int) -> None:
    rejects(message(rows=[row(account_id)], empty=99), f"account id {account_id} outside")


def test_duplicate_ids() -> None:
    rejects(message(rows=[row(XBOX_FIRST), row(XBOX_FIRST)], empty=98), "appears twice")


@pytest.mark.parametrize(
    ("value", "why"),
    [(1.0, "float"), (2.5, "float"), (True, "bool"), (False, "bool"), ("5", "string"),
     (None, "null"), ([1], "list")],
)  # fmt: skip
@pytest.mark.parametrize("counter", ["battles", "survived_battles"])
def test_counters_of_the_wrong_type_refuse_the_result(
    value: object, why: str, counter: str
) -> None:
    r = row(XBOX_FIRST)
    r[COLUMNS.index(counter)] = value
    rejects(message(rows=[r], empty=99), f"counter {counter} = .* not an integer")


@pytest.mark.parametrize(
    ("counter", "value", "why"),
    [("battles", -1, "battles -1 not within"), ("battles", 2**53, "not within"),
     ("battles", 10**30, "not within"), ("survived_battles", -1, "negative"),
     ("survived_battles", 11, "above 10"), ("wins", 11, "wins 11 above 10"),
     ("damage_dealt", 100_000 * 10 + 1, "damage_dealt .* per battle"),
     ("frags", 301, "frags 301 above 300"), ("shots", 2**53 - 1, "shots")],
)  # fmt: skip
def test_counters_beyond_the_game_are_set_aside(counter: str, value: int, why: str) -> None:
    r = row(XBOX_FIRST, battles=10)
    r[COLUMNS.index(counter)] = value
    result = set_aside(message(rows=[r, row(XBOX_FIRST + 1)], empty=98), why)
    assert [x[0] for x in result.rows] == [XBOX_FIRST + 1]
    assert result.set_aside[0].account_id == XBOX_FIRST


@pytest.mark.parametrize(
    ("edit", "why"),
    [({"wins": 5, "losses": 5, "draws": 1}, "wins \\+ losses \\+ draws above battles"),
     ({"hits": 61, "shots": 60}, "hits 61 above shots 60"),
     ({"battles": 0}, "above 0")],
)  # fmt: skip
def test_cross_field_rules(edit: dict[str, int], why: str) -> None:
    r = row(XBOX_FIRST, battles=10)
    for name, value in edit.items():
        r[COLUMNS.index(name)] = value
    set_aside(message(rows=[r], empty=99), why)


def test_counters_at_their_bounds_are_accepted() -> None:
    r = row(XBOX_FIRST, battles=2_000_000)
    for name, per_battle in COUNTER_PER_BATTLE.items():
        r[COLUMNS.index(name)] = per_battle * 2_000_000
    r[COLUMNS.index("wins")], r[COLUMNS.index("losses")] = 1_000_000, 1_000_000
    r[COLUMNS.index("draws")], r[COLUMNS.index("hits")] = 0, r[COLUMNS.index("shots")]
    result = validate_result(message(rows=[r], empty=99))
    assert result.set_aside == [] and len(result.rows) == 1


@pytest.mark.parametrize("value", [1.5, "1700000000", True])
@pytest.mark.parametrize("column", ["created_at", "last_battle_time"])
def test_times_of_the_wrong_type_refuse_the_result(value: object, column: str) -> None:
    r = row(XBOX_FIRST)
    r[COLUMNS.index(column)] = value
    rejects(message(rows=[r], empty=99), f"{column} .* not an integer")


NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("column", "value"),
    [("created_at", -1), ("created_at", 2**40), ("created_at", 1_300_000_000),
     ("created_at", NOW + 2 * 86_400), ("last_battle_time", -1), ("last_battle_time", 2**40),
     ("last_battle_time", 1_399_999_999), ("last_battle_time", NOW + 2 * 86_400)],
)  # fmt: skip
def test_times_outside_the_game_are_set_aside(column: str, value: int) -> None:
    r = row(XBOX_FIRST)  # created 1_400_000_000
    r[COLUMNS.index(column)] = value
    result = validate_result(message(rows=[r], empty=99), now=NOW)
    assert len(result.set_aside) == 1 and column in result.set_aside[0].reason


@pytest.mark.parametrize("last", [0, None, 1_400_000_000, NOW + 3600])
def test_times_accepted(last: int | None) -> None:
    r = row(XBOX_FIRST)
    r[COLUMNS.index("last_battle_time")] = last
    assert validate_result(message(rows=[r], empty=99), now=NOW).set_aside == []


@pytest.mark.parametrize("nickname", [None, 42, ["name"]])
def test_nicknames_of_the_wrong_type_refuse_the_result(nickname: object) -> None:
    r = row(XBOX_FIRST)
    r[1] = nickname
    rejects(message(rows=[r], empty=99), "nickname is not a string")


@pytest.mark.parametrize(
    "nickname",
    ["", "x" * 65, "tab\there", "new\nline", "nul\x00", "bell\x07", "del\x7f", "\x85c1",
     "\ud800"],
)  # fmt: skip
def test_bad_nicknames_are_set_aside(nickname: str) -> None:
    r = row(XBOX_FIRST)
    r[1] = nickname
    set_aside(message(rows=[r], empty=99), "nickname")


@pytest.mark.parametrize(
    "nickname",
    ["x" * 64, "a", "Dr. Tank_99", "Ünïcödé-名前", "back\\slash", "Gamer Tag 7",
     "no\u00a0break", "zero\u200bwidth", "tank\U0001f525", "new emoji \U0001fafa",
     "игрок#1234", "プレイヤー-x", "family \U0001f468\u200d\U0001f469\u200d\U0001f467"],
)  # fmt: skip
def test_good_nicknames(nickname: str) -> None:
    result = validate_result(message(rows=[row(XBOX_FIRST, nickname=nickname)], empty=99))
    assert result.set_aside == [] and result.rows[0][1] == nickname


@pytest.mark.parametrize("cut", [1, len(COLUMNS) - 1])
def test_row_of_wrong_length(cut: int) -> None:
    rejects(message(rows=[row(XBOX_FIRST)[:cut]], empty=99), f"list of {len(COLUMNS)} values")
    rejects(message(rows=[[*row(XBOX_FIRST), 0]], empty=99), f"list of {len(COLUMNS)} values")


@pytest.mark.parametrize("bad_row", [{"account_id": XBOX_FIRST}, "row", None, 5])
def test_row_not_a_list(bad_row: object) -> None:
    rejects(message(rows=[bad_row], empty=99), "row: expected a list")


@pytest.mark.parametrize("empty", [96, 98, 0, 100])
def test_rows_and_empty_must_cover_the_chunk(empty: int) -> None:
    rejects(message(accounts=3, empty=empty), r"3 accounts \+ .* empty ids != 100 ids")


@pytest.mark.parametrize("empty", [-1, True, 1.5, "97", None, MAX_CHUNK_IDS + 1])
def test_bad_empty(empty: object) -> None:
    rejects(message(empty=empty), "empty")


def test_chunk_span_too_large() -> None:
    rejects(message(size=MAX_CHUNK_IDS + 1, accounts=0), "bad span")


def test_chunk_span_reversed() -> None:
    rejects(message(last_id=XBOX_FIRST - 1, rows=[], empty=0), "bad span")


@pytest.mark.parametrize(
    "edit",
    [
        {"platform": "ps"},  # xbox ids claimed as PlayStation
        {"platform": "xbox", "first_id": PS_FIRST, "last_id": PS_FIRST + 99, "rows": []},
        # a span straddling the line between the platforms
        {"first_id": 999_999_950, "last_id": 1_000_000_049, "rows": [], "empty": 100},
    ],
)
def test_platform_mismatch_with_ids(edit: dict[str, Any]) -> None:
    rejects(message(**{"empty": 100, **edit}), "outside its platform")


@pytest.mark.parametrize("platform", ["XBOX", "pc", None, 1])
def test_unknown_platform(platform: object) -> None:
    rejects(message(platform=platform), "platform")


def test_too_many_rows() -> None:
    msg = message(size=100, accounts=100, empty=0)
    msg["rows"].append(row(XBOX_FIRST + 5))
    rejects(msg, "at most one row per id")


@pytest.mark.parametrize("rows", [None, {"0": []}, "[]"])
def test_rows_not_a_list(rows: object) -> None:
    rejects(message(rows=rows), "rows")


@pytest.mark.parametrize(
    ("key", "value"),
    [("chunk_id", 0), ("chunk_id", "7"), ("chunk_id", 2**31), ("cycle_id", -1),
     ("cycle_id", True), ("first_id", None), ("last_id", 1.0e9)],
)  # fmt: skip
def test_bad_chunk_fields(key: str, value: object) -> None:
    rejects(message(**{key: value}), key)


@pytest.mark.parametrize(
    ("key", "value"),
    [("node", 5), ("node", "x" * 256), ("node", "evil\nnode"), ("seconds", -1),
     ("seconds", True), ("seconds", "1"), ("seconds", float("nan")), ("seconds", float("inf")),
     ("seconds", 86_400), ("requests", -1), ("limit_errors", 1.0), ("retries", 10**9)],
)  # fmt: skip
def test_bad_bookkeeping(key: str, value: object) -> None:
    rejects(message(**{key: value}), key)


def test_validation_does_not_modify_the_message() -> None:
    msg = message()
    before = copy.deepcopy(msg)
    validate_result(msg)
    assert msg == before


# -- property: garbage in, InvalidResult out ----------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner,
                                                                  max_size=6),
    max_leaves=30,
)  # fmt: skip


def _interesting_value(base: object) -> st.SearchStrategy[object]:
    """Garbage, or something near the right value (off by one, wrong type)."""
    near: list[object] = [_json]
    if isinstance(base, int) and not isinstance(base, bool):
        near.append(st.sampled_from([base - 1, base + 1, -base, float(base), str(base), True]))
    return st.one_of(*near)


@st.composite
def _mutated_message(draw: st.DrawFn) -> object:
    """A valid message with one to three parts replaced: reaches the deep checks."""
    msg = message(first=draw(st.sampled_from([XBOX_FIRST, PS_FIRST])), size=100, accounts=4)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["key", "row", "cell", "drop", "add"]))
        if where == "key":
            key = draw(st.sampled_from(sorted(msg)))
            msg[key] = draw(_interesting_value(msg[key]))
        elif where == "drop" and msg:
            del msg[draw(st.sampled_from(sorted(msg)))]
        elif where == "add":
            msg[draw(st.text(max_size=12))] = draw(_json)
        elif isinstance(msg.get("rows"), list) and msg["rows"]:
            i = draw(st.integers(0, len(msg["rows"]) - 1))
            r = msg["rows"][i]
            if where == "row" or not isinstance(r, list) or not r:
                msg["rows"][i] = draw(_json)
            else:
                j = draw(st.integers(0, len(r) - 1))
                r[j] = draw(_interesting_value(r[j]))
    return msg


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_json, _mutated_message()))
def test_garbage_never_raises_anything_but_invalid_result(raw: object) -> None:
    try:
        result = validate_result(raw)
    except InvalidResult:
        return
    # whatever passed is internally consistent and survives a JSON round trip
    ids = [r[0] for r in result.rows] + [s.account_id for s in result.set_aside]
    assert len(ids) + result.empty == result.spec.size
    assert len(set(ids)) == len(ids)
    assert validate_result(json.loads(json.dumps(result.to_message()))) == result
