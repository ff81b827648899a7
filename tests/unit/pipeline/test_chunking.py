"""split_range and batches: every id exactly once, in order, in slices of the asked size."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from battletracker.pipeline.chunking import batches, split_range
from battletracker.wargaming.client import MAX_IDS

ids = st.integers(min_value=0, max_value=2**40)
spans = st.integers(min_value=0, max_value=3_000)
sizes = st.integers(min_value=1, max_value=1_200)


@given(first=ids, span=spans, size=sizes)
def test_split_range_covers_every_id_once(first: int, span: int, size: int) -> None:
    last = first + span - 1  # span 0: an empty range
    slices = list(split_range(first, last, size))
    covered = [i for a, b in slices for i in range(a, b + 1)]
    assert covered == list(range(first, last + 1))  # every id, once, in order
    for (_, b), (c, _) in itertools.pairwise(slices):
        assert c == b + 1  # consecutive: no gap, no overlap
    for a, b in slices:
        assert a <= b
        assert b - a + 1 <= size
    # only the last slice may be short, so the count is the minimum possible
    assert all(b - a + 1 == size for a, b in slices[:-1])
    assert len(slices) == -(-span // size)


def test_split_range_examples() -> None:
    assert list(split_range(5000, 5009, 4)) == [(5000, 5003), (5004, 5007), (5008, 5009)]
    assert list(split_range(7, 7, 100)) == [(7, 7)]
    assert list(split_range(1, 100, 100)) == [(1, 100)]
    assert list(split_range(1, 101, 100)) == [(1, 100), (101, 101)]
    assert list(split_range(10, 9, 100)) == []


@pytest.mark.parametrize("size", [0, -1])
def test_chunk_size_must_be_positive(size: int) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        list(split_range(1, 10, size))


@given(first=ids, span=spans)
def test_batches_are_request_sized(first: int, span: int) -> None:
    last = first + span - 1
    got = batches(first, last)
    assert [i for batch in got for i in batch] == list(range(first, last + 1))
    assert all(1 <= len(batch) <= MAX_IDS for batch in got)
    assert all(len(batch) == MAX_IDS for batch in got[:-1])


@given(first=ids, span=spans, size=st.integers(min_value=1, max_value=MAX_IDS))
def test_batches_of_a_smaller_size(first: int, span: int, size: int) -> None:
    got = batches(first, first + span - 1, size)
    assert sum(map(len, got)) == span
    assert all(1 <= len(batch) <= size for batch in got)


def test_batches_of_a_night_sized_chunk() -> None:
    got = batches(5_000, 104_999)
    assert len(got) == 1_000
    assert got[0][0] == 5_000 and got[-1][-1] == 104_999
