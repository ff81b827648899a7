"""Spot-check comparison: counters only grow within a night; accounts cannot be invented."""

from __future__ import annotations

import random

from battletracker.nodes.spotcheck import compare, spot_check
from battletracker.pipeline.result import ChunkSpec, FetchResult
from battletracker.settings import Settings

ROW = (100, "n", 1, 2, *range(10, 24))


def _row(account_id: int, bump: int = 0) -> tuple[object, ...]:
    return (account_id, "n", 1, 2, 10 + bump, *range(11, 24))


def test_equal_or_grown_counters_agree() -> None:
    assert compare({100: _row(100)}, {100: _row(100)}).ok
    assert compare({100: _row(100)}, {100: _row(100, bump=3)}).ok  # played since


def test_inflated_invented_or_missing_accounts_disagree() -> None:
    inflated = compare({100: _row(100, bump=1)}, {100: _row(100)})
    assert not inflated.ok and "battles" in inflated.detail
    assert "invented" in compare({100: _row(100), 101: _row(101)}, {100: _row(100)}).detail
    assert "missing" in compare({100: _row(100)}, {100: _row(100), 101: _row(101)}).detail


def test_spot_check_refetches_the_batch_of_one_stored_account() -> None:
    spec = ChunkSpec(1, 1, "xbox", 5000, 5299)
    result = FetchResult(spec, [_row(5150)], 299)  # type: ignore[list-item]
    asked: list[list[int]] = []

    def fetch(ids: list[int]) -> dict[int, tuple[object, ...]]:
        asked.append(ids)
        return {5150: _row(5150)}

    verdict = spot_check(result, Settings(), fetch=fetch, rng=random.Random(1))  # type: ignore[arg-type]
    assert verdict.ok and asked == [list(range(5100, 5200))]
