"""The operator's pages: cycles, chunks by status, problem chunks, ranges, nodes, keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ..stats import registry
from . import progress
from .deps import DbSession, operator
from .templating import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(operator)])


@router.get("/operator")
def operator_page(
    request: Request,
    session: DbSession,
    cycle_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    cycles = progress.list_cycles(session, limit=30)
    progresses = [progress.progress_of(session, c) for c in cycles]
    selected = next((p for p in progresses if p.id == cycle_id), None) if cycle_id else None
    if selected is None and progresses:
        selected = progresses[0]
    problems = progress.problem_chunks(session, selected.id) if selected else []
    nodes = progress.credit(session)
    settings = request.app.state.bt.settings
    keys = [(k.app_id[:2] + "…", k.rps) for k in settings.wg_keys]
    return render(request, "operator.html", {
        "cycles": progresses,
        "selected": selected,
        "problems": problems,
        "ranges": progress.platform_ranges(session),
        "nodes": nodes,
        "keys": keys,
        "plugin_errors": list(registry.default_registry().errors),
    })
