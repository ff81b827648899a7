"""Cut a platform's id range into chunks: pure, so the coordinator and tests agree."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["batches", "split_range"]


def split_range(min_id: int, max_id: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """Consecutive inclusive ``(first, last)`` slices covering ``[min_id, max_id]`` once."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be > 0")
    if min_id > max_id:
        return
    first = min_id
    while first <= max_id:
        last = min(first + chunk_size - 1, max_id)
        yield first, last
        first = last + 1


def batches(first_id: int, last_id: int, size: int = 100) -> list[list[int]]:
    """The ids of a chunk in request-sized lists."""
    return [list(range(a, b + 1)) for a, b in split_range(first_id, last_id, size)]
