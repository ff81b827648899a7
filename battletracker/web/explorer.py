"""The API explorer: Swagger UI from vendored files (``static/explorer``) and the schema.

FastAPI's own ``/docs`` loads Swagger UI from a CDN, which breaks offline and would need
the CDN in the Content-Security-Policy; this page serves the same UI from the app.
Both routes sit behind the guest gate like the data they describe.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API explorer · battletracker</title>
<link rel="stylesheet" href="/static/explorer/swagger-ui.css">
<link rel="stylesheet" href="/static/explorer.css">
<script src="/static/explorer/swagger-ui-bundle.js" defer></script>
<script src="/static/explorer.js" defer></script>
</head>
<body>
<p class="bt-back"><a href="/">battletracker</a> · API explorer ·
<a href="/openapi.json">openapi.json</a></p>
<div id="swagger-ui" data-openapi="/openapi.json"></div>
</body>
</html>
"""


@router.get("/openapi.json")
def openapi(request: Request) -> Response:
    """The OpenAPI schema of the JSON API."""
    return JSONResponse(request.app.openapi())


@router.get("/api/docs")
def docs() -> Response:
    """Swagger UI on :func:`openapi`."""
    return HTMLResponse(PAGE)
