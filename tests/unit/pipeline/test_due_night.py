"""When a night is due, and which night beat missed (started late, once)."""

from __future__ import annotations

import datetime as dt

import pytest

from battletracker.pipeline.coordinator import due_night, next_due_time
from battletracker.settings import Settings

S = Settings(cycle_time="02:30", date_lag_hours=12)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("now", "night"),
    [(at(2, 2, 30), dt.date(2026, 3, 1)),  # on time
     (at(2, 9, 0), dt.date(2026, 3, 1)),  # beat was down at 02:30: start it now
     (at(2, 14, 29), dt.date(2026, 3, 1)),
     (at(2, 14, 31), None),  # too late: the next night is closer
     (at(2, 2, 29), None)],  # yesterday's 02:30 is more than 12 h ago
)  # fmt: skip
def test_due_night(now: dt.datetime, night: dt.date | None) -> None:
    assert due_night(now, S) == night


def test_next_due_time_is_the_next_cycle_time() -> None:
    assert next_due_time(at(2, 2, 29), S) == at(2, 2, 30)
    assert next_due_time(at(2, 2, 30), S) == at(3, 2, 30)
    assert next_due_time(at(2, 23, 0), S) == at(3, 2, 30)
