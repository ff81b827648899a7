"""``/metrics`` (Prometheus text format) and ``/healthz`` (database reachable?)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .api.schemas import Health
from .deps import state_of
from .hardening import metrics_allowed

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus exposition of this app's own registry (cycle gauges read now).

    Only for the bearer of ``metrics_token`` or a direct connection from
    ``metrics_networks`` (:func:`.hardening.metrics_allowed`); others get 403.
    """
    if not metrics_allowed(request, state_of(request).settings):
        return JSONResponse({"detail": "metrics need the metrics token"}, status_code=403,
                            headers={"www-authenticate": "Bearer"})
    return Response(generate_latest(request.app.state.registry),
                    media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", response_model=Health,
            responses={503: {"model": Health, "description": "database unreachable"}})
def healthz(request: Request) -> Response:
    """200 when the database answers, 503 when it does not."""
    try:
        with state_of(request).sessions() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("healthz: database unreachable: %s", exc.__class__.__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"},
                            status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
