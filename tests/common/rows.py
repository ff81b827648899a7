"""Plausible account rows for tests: every counter within the game's bounds."""

from __future__ import annotations

from battletracker.models import COUNTERS

__all__ = ["counters_for"]


def counters_for(battles: int, salt: int = 0) -> list[int]:
    """The 14 counters (``COUNTERS`` order) of an account with ``battles`` battles."""
    b, s = battles, (salt % 100 if battles else 0)
    values = [b, b // 2, b // 3, b // 50, b + s % 7, b // 2, 900 * b + s, 700 * b,
              b // 5, b // 4, 400 * b + s, 4 * b, 6 * b, b // 4]  # fmt: skip
    assert len(values) == len(COUNTERS)
    return values
