"""Which size of a whole-night run each target of issue 16 is checked at."""

from __future__ import annotations

from typing import Any

from battletracker.bench.night import _growth_figures, _size_figures, aim_of
from battletracker.bench.report import Outcome


def night(players: int, seconds: float) -> dict[str, Any]:
    """A night's measurements as ``one_night`` returns them, every stage ``seconds``."""
    return {
        "players": players, "store_s": seconds, "diffs_s": seconds, "boards_s": seconds,
        "activity_s": seconds, "stage_boards": {"wall_s": seconds, "pieces": 24},
        "sizes": {"players": 100, "boards": 150}, "lookup_p99_ms": {"top": 5.0},
    }  # fmt: skip


def test_time_targets_are_checked_at_five_million_when_it_ran() -> None:
    assert aim_of([1_000_000, 5_000_000, 17_000_000]) == 5_000_000
    assert aim_of([20_000, 100_000]) == 100_000  # a smoke run: its largest
    assert aim_of([17_000_000]) is None  # 5 M targets are no bound on a 17 M night


def test_a_slow_night_misses_the_time_targets_only_where_they_apply() -> None:
    outcome = Outcome("night", {})
    _size_figures(outcome, night(5_000_000, 100.0), aimed=True)
    _size_figures(outcome, night(17_000_000, 400.0), aimed=False)
    met = {f.name.split(" (")[0]: f.met for f in outcome.figures}
    assert met["compute_diffs s at 5,000,000"] is False  # 100 s against < 60
    assert met["all boards, all windows s at 5,000,000"] is True  # 100 s against < 120
    assert met["compute_diffs s at 17,000,000"] is None  # reported, no target
    assert met["all boards, all windows s at 17,000,000"] is None
    assert met["boards disk / players disk at 17,000,000"] is True  # 1.5 <= 2
    assert met["top lookup p99 ms at 17,000,000"] is True


def test_growth_is_judged_from_each_size_to_the_next() -> None:
    outcome = Outcome("night", {})
    _growth_figures(outcome, night(1_000_000, 10.0), night(5_000_000, 50.0))
    _growth_figures(outcome, night(5_000_000, 50.0), night(17_000_000, 200.0))
    by_name = {f.name: f for f in outcome.figures}
    linear = by_name["diffs time x5 size (1,000,000 -> 5,000,000)"]
    assert (linear.value, linear.met) == (5.0, True)
    faster = by_name["diffs time x3.4 size (5,000,000 -> 17,000,000)"]
    assert faster.value == 4.0 and faster.met is False
