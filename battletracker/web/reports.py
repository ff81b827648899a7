"""``/reports/{date}.png``: the daily report image (:mod:`battletracker.report`), cached.

Drawing takes a good fraction of a second of CPU, so each image is drawn once per
content: the cache key is the report's data itself, so a night that is re-run gets a
new image and a repeated request gets the bytes already drawn.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from ..report.data import DayReport, NoReport, load_report
from ..report.render import render_png
from .deps import DbSession

__all__ = ["ReportImages", "router"]

router = APIRouter(include_in_schema=False)


class ReportImages:
    """An LRU of rendered reports keyed by their content."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._images: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        #: How many images were drawn (a test checks the cache with it).
        self.drawn = 0

    def png(self, report: DayReport) -> bytes:
        key = repr(report)
        with self._lock:
            if key in self._images:
                self._images.move_to_end(key)
                return self._images[key]
        png = render_png(report)
        with self._lock:
            self.drawn += 1
            self._images[key] = png
            while len(self._images) > self.size:
                self._images.popitem(last=False)
        return png


IMAGES = ReportImages()


@router.get("/reports/{day}.png")
def report_image(session: DbSession, day: dt.date) -> Response:
    """The report of ``day`` as a PNG; 404 when no night of that date has finished."""
    try:
        report = load_report(session, day)
    except NoReport as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(IMAGES.png(report), media_type="image/png",
                    headers={"cache-control": "private, max-age=600"})
