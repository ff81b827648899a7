"""The daily report: one day's activity per platform against the 30 days before, as a PNG.

``battletracker report --date D --out FILE.png`` writes it; the web app serves the same
image at ``/reports/D.png`` and lists the days in an Atom feed (``/feed.atom``). Names
are imported lazily, so that registering the command loads neither SQLAlchemy nor
matplotlib (a volunteer's slim install has neither).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import DayReport as DayReport
    from .data import NoReport as NoReport
    from .data import PlatformDay as PlatformDay
    from .data import load_report as load_report
    from .data import report_dates as report_dates
    from .render import render_png as render_png

__all__ = ["DayReport", "NoReport", "PlatformDay", "load_report", "render_png", "report_dates"]

_WHERE = {"render_png": ".render", **{n: ".data" for n in __all__ if n != "render_png"}}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
