"""``/feed.atom``: an Atom feed of the daily reports, one entry per finished night.

Each entry says the day's figures per platform against the 30-day average and shows the
report image; its id is the report's URL, so a re-run night updates its entry instead
of adding another.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..report.data import MEASURES, PLATFORMS, DayReport, load_report, report_dates
from .deps import DbSession

__all__ = ["ATOM", "router"]

router = APIRouter(include_in_schema=False)

ATOM = "http://www.w3.org/2005/Atom"
ENTRIES = 30


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        node.text = text
    return node


def _summary(report: DayReport) -> str:
    parts = []
    for platform, name in PLATFORMS:
        day = report.day(platform)
        if day is None:
            continue
        figures = []
        for measure, title in MEASURES:
            value = getattr(day, measure)
            mean = report.mean_before(platform, measure)
            change = f" ({(value - mean) / mean * 100:+.1f} % vs 30-day avg)" if mean else ""
            figures.append(f"{value:,} {title.lower()}{change}")
        parts.append(f"{name}: " + ", ".join(figures))
    return "; ".join(parts) + "."


def _content(report: DayReport, image: str) -> str:
    lines = "".join(f"<li>{escape(line.strip())}</li>"
                    for line in _summary(report).rstrip(".").split(";"))
    return (f'<p><img src="{escape(image)}" alt="Daily report {report.date}" '
            f'width="1500" height="640"></p><ul>{lines}</ul>')


@router.get("/feed.atom")
def feed(request: Request, session: DbSession) -> Response:
    """The latest daily reports, newest first (Atom 1.0)."""
    base = str(request.base_url).rstrip("/")
    dates = report_dates(session, limit=ENTRIES)
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    _sub(root, "id", f"{base}/feed.atom")
    _sub(root, "title", "battletracker: World of Tanks console daily reports")
    _sub(root, "subtitle", "Active accounts, battles and new accounts per platform, "
                           "each night against the 30 days before.")
    _sub(root, "link", rel="self", href=f"{base}/feed.atom", type="application/atom+xml")
    _sub(root, "link", rel="alternate", href=f"{base}/", type="text/html")
    author = _sub(root, "author")
    _sub(author, "name", "battletracker")
    _sub(root, "generator", "battletracker")
    stamps = []
    entries = []
    for day, finished in dates:
        report = load_report(session, day)
        updated = finished or dt.datetime.combine(day + dt.timedelta(days=1), dt.time(),
                                                  dt.UTC)
        stamps.append(updated)
        image = f"{base}/reports/{day.isoformat()}.png"
        entry = ET.Element(f"{{{ATOM}}}entry")
        _sub(entry, "id", image)
        _sub(entry, "title", f"Daily report {day.isoformat()}: "
                             f"{report.total('active_accounts'):,} active accounts, "
                             f"{report.total('battles'):,} battles")
        _sub(entry, "updated", _stamp(updated))
        _sub(entry, "published", _stamp(updated))
        _sub(entry, "link", rel="alternate", href=image, type="image/png")
        _sub(entry, "link", rel="enclosure", href=image, type="image/png")
        _sub(entry, "summary", _summary(report))
        _sub(entry, "content", _content(report, image), type="html")
        entries.append(entry)
    _sub(root, "updated", _stamp(max(stamps, default=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))))
    root.extend(entries)
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/atom+xml; charset=utf-8")
