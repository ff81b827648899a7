"""The Jinja2 environment of the pages, its filters, and ``render``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from .deps import get_identity, state_of

__all__ = ["make_templates", "render"]

TEMPLATE_DIR = Path(__file__).parent / "templates"
#: Shown for a missing value: an en dash.
NONE = "\u2013"


def fmt_int(value: Any) -> str:
    """``1234567`` -> ``1,234,567``; ``None`` -> an en dash."""
    if value is None:
        return NONE
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def fmt_num(value: Any, digits: int = 2) -> str:
    if value is None:
        return NONE
    try:
        return f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def fmt_duration(seconds: Any) -> str:
    """``5400`` -> ``1 h 30 min``."""
    if seconds is None:
        return NONE
    total = int(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min"
    return f"{total} s"


def fmt_time(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
    templates.env.filters.update(
        int=fmt_int, num=fmt_num, duration=fmt_duration, time=fmt_time)
    return templates


TEMPLATES = make_templates()


def render(request: Request, name: str, context: dict[str, Any] | None = None,
           *, status_code: int = 200) -> Response:
    """Render ``name`` with the visitor's identity and the login options in context."""
    state = state_of(request)
    ctx = {
        "me": get_identity(request),
        "guest_login": state.settings.guest_login,
        "wg_signin": bool(state.settings.wg_signin_app_id),
        **(context or {}),
    }
    return TEMPLATES.TemplateResponse(request, name, ctx, status_code=status_code)
