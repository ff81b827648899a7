"""What a daily report shows, read from ``daily_activity`` (materialised after each night)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["MEASURES", "WINDOW_DAYS", "DayReport", "NoReport", "PlatformDay", "load_report",
           "report_dates"]

#: The report compares the day with the days before it, this many in all (the day included).
WINDOW_DAYS = 30
#: (attribute, title) of each measure, in the order shown.
MEASURES = (("active_accounts", "Active accounts"), ("battles", "Battles"),
            ("new_accounts", "New accounts"))
PLATFORMS = (("xbox", "Xbox"), ("ps", "PlayStation"))


class NoReport(LookupError):
    """No activity was materialised for that date (no finished night)."""


@dataclass(frozen=True)
class PlatformDay:
    """One platform on one date."""

    date: dt.date
    active_accounts: int
    battles: int
    new_accounts: int


@dataclass(frozen=True)
class DayReport:
    """The day's figures and the window's series, per platform (``xbox``, ``ps``)."""

    date: dt.date
    #: platform -> the days of the window that have data, oldest first (the day last).
    series: dict[str, list[PlatformDay]] = field(default_factory=dict)

    def day(self, platform: str) -> PlatformDay | None:
        rows = self.series.get(platform) or []
        return rows[-1] if rows and rows[-1].date == self.date else None

    def mean_before(self, platform: str, measure: str) -> float | None:
        """The measure's mean over the window's days before the report's date."""
        before = [getattr(r, measure) for r in self.series.get(platform, [])
                  if r.date < self.date]
        return sum(before) / len(before) if before else None

    def total(self, measure: str) -> int:
        return sum(getattr(d, measure) for p, _ in PLATFORMS if (d := self.day(p)))


def load_report(session: Session, day: dt.date) -> DayReport:
    """The report of ``day``; :class:`NoReport` when the day has no activity rows."""
    rows = session.execute(text("""
        SELECT date, CAST(platform AS text) AS platform, active_accounts, battles,
               new_accounts
        FROM daily_activity
        WHERE date > :day - :days AND date <= :day
        ORDER BY date
    """), {"day": day, "days": WINDOW_DAYS}).all()
    if not any(r.date == day for r in rows):
        raise NoReport(f"no activity for {day}: no night of that date has finished")
    series: dict[str, list[PlatformDay]] = {p: [] for p, _ in PLATFORMS}
    for r in rows:
        series.setdefault(r.platform, []).append(PlatformDay(
            r.date, int(r.active_accounts), int(r.battles), int(r.new_accounts)))
    return DayReport(day, series)


def report_dates(session: Session, *, limit: int = 30) -> list[tuple[dt.date, dt.datetime | None]]:
    """The latest dates that have a report, newest first, with when their night finished."""
    rows = session.execute(text("""
        SELECT a.date, max(c.finished_at) AS finished_at
        FROM (SELECT DISTINCT date FROM daily_activity ORDER BY date DESC LIMIT :limit) a
        LEFT JOIN cycles c ON c.date = a.date
        GROUP BY a.date ORDER BY a.date DESC
    """), {"limit": limit}).all()
    return [(r.date, r.finished_at) for r in rows]
