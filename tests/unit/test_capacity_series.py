"""The capacity chart's series: ids/s per window, the last short window included."""

from __future__ import annotations

from battletracker.bench.capacity import _series


def test_windows_of_a_step_then_the_short_tail() -> None:
    samples = [(0.5, 1, 0), (1.0, 2, 0), (2.0, 4, 0), (2.5, 5, 0)]
    assert _series(samples, chunk_size=100, step=2.0) == [[2.0, 200], [2.5, 200]]


def test_a_run_shorter_than_a_step_is_one_point() -> None:
    assert _series([(0.5, 1, 0), (1.0, 3, 0)], chunk_size=1000, step=2.0) == [[1.0, 3000]]
    assert _series([], chunk_size=1000) == []
