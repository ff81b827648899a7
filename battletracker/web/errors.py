"""Exception handlers: JSON for the API, HTML pages for browsers, never a bare 500.

Stats errors map to the status their docstring promises (unknown board/player 404, bad
window/platform/paging 422). Anything unexpected is logged with its traceback and answered
with a JSON (or HTML) 500 that reveals nothing; the tests require there be none.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..stats.interfaces import StatsError, UnknownBoard, UnknownPlayer
from .deps import LoginRequired
from .templating import render

__all__ = ["install_handlers", "wants_json"]

log = logging.getLogger(__name__)


def wants_json(request: Request) -> bool:
    """API paths answer JSON; pages answer HTML."""
    path = request.url.path
    if path == "/api/docs":  # the explorer is a page
        return False
    return path.startswith("/api/") or path in ("/openapi.json", "/healthz", "/metrics")


def install_handlers(app: FastAPI) -> None:
    async def problem(request: Request, status: int, detail: object) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": detail}, status_code=status)
        # the page shows who is logged in, which may read the session from the
        # database: never on the event loop
        return await run_in_threadpool(render, request, "error.html",
                                       {"status": status, "detail": detail},
                                       status_code=status)

    @app.exception_handler(StatsError)
    async def stats_error(request: Request, exc: StatsError) -> Response:
        status = 404 if isinstance(exc, UnknownBoard | UnknownPlayer) else 422
        return await problem(request, status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        return await problem(request, exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()]
        return await problem(request, 422, errors)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": str(exc)}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        kind = "&operator=1" if exc.operator else ""
        return RedirectResponse(f"/login?next={quote(target, safe='')}{kind}", status_code=303)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        if wants_json(request):
            return JSONResponse({"detail": "internal server error"}, status_code=500)
        return Response("internal server error", status_code=500, media_type="text/plain")

